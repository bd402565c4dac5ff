# Copyright: acmefleet developers
# Apache License 2.0
"""A small client of the acmefleet console REST API for modules and plugins.

Standard library and Ansible's ``open_url`` only, so it runs wherever Ansible runs.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

API_PREFIX = "/admin/api/v1"


class ConsoleApiError(Exception):
    """An API call failed; the message carries the server's detail, never the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def read_token(token: str | None, token_file: str | None) -> str:
    if token:
        return token.strip()
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise ConsoleApiError(
                f"cannot read the token file {token_file}: {exc.strerror}"
            ) from exc
    raise ConsoleApiError("an API token is required (token or token_file)")


class ConsoleApi:
    def __init__(
        self,
        url: str,
        token: str,
        ca_bundle: str | None = None,
        validate_certs: bool = True,
        timeout: float = 30,
    ) -> None:
        self.base = url.rstrip("/") + API_PREFIX
        self._token = token
        self.ca_bundle = ca_bundle
        self.validate_certs = validate_certs
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = open_url(
                self.base + path,
                method=method,
                data=data,
                headers=headers,
                validate_certs=self.validate_certs,
                ca_path=self.ca_bundle,
                timeout=self.timeout,
            )
            raw = response.read()
        except HTTPError as exc:
            raise ConsoleApiError(
                f"{method} {path}: HTTP {exc.code}: {_detail(exc)}", exc.code
            ) from None
        except URLError as exc:
            raise ConsoleApiError(
                f"{method} {path}: cannot reach {self.base}: {exc.reason}"
            ) from None
        return json.loads(raw) if raw else None

    def organisation_id(self, org: str | int) -> int:
        if isinstance(org, int) or str(org).isdigit():
            return int(org)
        for item in self.call("GET", "/organizations"):
            if item["name"] == org:
                return int(item["id"])
        raise ConsoleApiError(f"no organisation named {org!r}", 404)

    def mint_eab(self, org: str | int, endpoint: str, days: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"org_id": self.organisation_id(org), "endpoint": endpoint}
        if days:
            body["days"] = days
        result: dict[str, Any] = self.call("POST", "/eab", body)
        return result

    def credential(self, kid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/eab/{kid}")
        return result

    def revoke_eab(self, kid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/eab/{kid}/revoke")
        return result


def _detail(exc: HTTPError) -> str:
    try:
        payload = json.loads(exc.read() or b"{}")
    except ValueError:
        return str(exc.reason)
    detail = payload.get("detail", exc.reason)
    return detail if isinstance(detail, str) else json.dumps(detail)
