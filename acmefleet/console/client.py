"""An HTTP client of the console REST API (``/admin/api/v1``): the CLI's remote backend.

It returns the API's JSON as it comes (the ``views`` shapes), so the CLI prints the same thing
whether it works on a data directory or on a server. TLS is always verified (against a given CA
bundle, or the system's trust store). Every failure becomes an :class:`ApiError` whose message
is one line, carries the server's ``detail``, and never the token.

Kept light on purpose: no database or CA imports, so a remote command starts quickly.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote, urlsplit

import httpx

from acmefleet import __version__
from acmefleet.console.errors import ConsoleError, NotFound

API_PATH = "/admin/api/v1"
DEFAULT_TIMEOUT = 60.0  # seconds to wait for an answer; an http-01 check may take a while
CONNECT_TIMEOUT = 10.0
MAX_TOKEN_LENGTH = 4096
MIN_JUSTIFICATION, MAX_JUSTIFICATION = 3, 1000
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_LOOPBACK_NAMES = ("localhost", "localhost.")

JSON = dict[str, Any]


class ApiError(ConsoleError):
    """The server said no, or could not be reached. ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def check_token(token: str, origin: str) -> str:
    """The token, stripped; refused (without echoing it) if it cannot be a bearer token."""
    value = token.strip()
    if not value:
        raise ApiError(f"the token from {origin} is empty")
    if len(value) > MAX_TOKEN_LENGTH or not _TOKEN_CHARS.fullmatch(value):
        raise ApiError(f"the token from {origin} is not a valid token (one line, no spaces)")
    return value


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_url(url: str) -> str:
    """``https://host[:port][/prefix]`` without a trailing slash or the API path.

    Plain ``http://`` is refused except on loopback: the bearer token must not travel in clear.
    """
    raw = url.strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ApiError(f"{raw!r} is not a server URL (expected https://HOST[:PORT])")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ApiError("the server URL must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ApiError(f"{raw} is plain http; the token needs https:// (http only on loopback)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ApiError(f"{raw!r}: {exc}") from exc
    path = parts.path.rstrip("/")
    if path.endswith(API_PATH):
        path = path[: -len(API_PATH)]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _format_detail(detail: object) -> str:
    """The API's ``detail``: a string, or a list of validation problems ``{loc, msg}``."""
    if isinstance(detail, list):
        problems = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                problems.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
            else:
                problems.append(str(item))
        return "; ".join(problems)
    return str(detail)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class RemoteBackend:
    """The console operations over HTTPS. Use as a context manager (one connection pool)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca_bundle: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = normalise_url(url)
        self._token = check_token(token, "the caller")
        self._ca_bundle = ca_bundle
        self._timeout = timeout
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:  # never the token
        return f"RemoteBackend({self.url!r})"

    @property
    def ca_bundle(self) -> str | None:
        """The CA bundle this client trusts (what ACME clients of this server need), if any."""
        return str(self._ca_bundle.resolve()) if self._ca_bundle is not None else None

    # -- transport -------------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext:
        if self._ca_bundle is None:
            return ssl.create_default_context()
        try:
            return ssl.create_default_context(cafile=str(self._ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise ApiError(f"cannot load the CA bundle {self._ca_bundle}: {reason}") from exc

    def __enter__(self) -> Self:
        self._client = httpx.Client(
            base_url=self.url + API_PATH,
            verify=self._tls(),
            timeout=httpx.Timeout(self._timeout, connect=CONNECT_TIMEOUT),
            headers={
                "Authorization": f"Bearer {self._token}",
                "Accept": "application/json",
                "User-Agent": f"acmefleet-cli/{__version__}",
            },
            follow_redirects=False,
            # trust_env (the default): HTTPS_PROXY and NO_PROXY apply as for other tools;
            # SSL_CERT_FILE only through the system trust store (when no bundle is given).
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _scrub(self, text: str) -> str:
        return _one_line(text.replace(self._token, "***"))

    def _request(
        self,
        method: Literal["GET", "POST", "DELETE"],
        path: str,
        *,
        body: JSON | None = None,
        params: dict[str, str | int] | None = None,
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("use RemoteBackend as a context manager")
        try:
            response = self._client.request(method, path, json=body, params=params)
        except httpx.TimeoutException as exc:
            raise ApiError(f"{self.url} did not answer within {self._timeout:g} s") from exc
        except httpx.ConnectError as exc:
            hint = ""
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                hint = " (give the server's CA bundle with --ca-bundle or ACMEFLEET_CA_BUNDLE)"
            raise ApiError(self._scrub(f"cannot connect to {self.url}: {exc}{hint}")) from exc
        except httpx.HTTPError as exc:
            raise ApiError(self._scrub(f"request to {self.url} failed: {exc}")) from exc
        if response.status_code >= 300:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> ApiError:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "detail" in payload:
            message = f"{_format_detail(payload['detail'])} (HTTP {status})"
        elif 300 <= status < 400:
            message = (
                f"the server redirects {response.request.url.path} to "
                f"{response.headers.get('location', '?')} (HTTP {status}); check the URL"
            )
        else:
            message = (
                f"HTTP {status} {response.reason_phrase} for {response.request.method} "
                f"{response.request.url.path}: is {self.url} an acmefleet server?"
            )
        error_class = NotFoundError if status == 404 else ApiError
        return error_class(self._scrub(message), status)

    def _json(
        self,
        method: Literal["GET", "POST", "DELETE"],
        path: str,
        *,
        body: JSON | None = None,
        params: dict[str, str | int] | None = None,
    ) -> Any:
        response = self._request(method, path, body=body, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                f"the answer to {method} {path} is not JSON: is {self.url} an acmefleet server?"
            ) from exc

    def _object(self, method: Literal["GET", "POST", "DELETE"], path: str, **kw: Any) -> JSON:
        found = self._json(method, path, **kw)
        if not isinstance(found, dict):
            raise ApiError(f"unexpected answer to {method} {path}: not a JSON object")
        return found

    def _list(self, path: str, params: dict[str, str | int] | None = None) -> list[JSON]:
        found = self._json("GET", path, params=params)
        if not isinstance(found, list):
            raise ApiError(f"unexpected answer to GET {path}: not a JSON list")
        return found

    # -- organisations ---------------------------------------------------------------------

    def list_orgs(self) -> list[JSON]:
        return self._list("/organizations")

    def create_org(self, name: str) -> JSON:
        return self._object("POST", "/organizations", body={"name": name})

    def get_org(self, ref: str) -> JSON:
        """By exact name first, then by numeric id (the API has no lookup by name)."""
        orgs = self.list_orgs()
        for org in orgs:
            if org["name"] == ref:
                return org
        if ref.strip().isdigit():
            for org in orgs:
                if org["id"] == int(ref):
                    return org
        raise NotFound(f"no organisation {ref!r}")

    def _org_id(self, ref: str) -> int:
        return int(self.get_org(ref)["id"])

    def set_org_status(self, ref: str, status: Literal["active", "disabled"]) -> JSON:
        action = "enable" if status == "active" else "disable"
        return self._object("POST", f"/organizations/{self._org_id(ref)}/{action}")

    # -- domains ---------------------------------------------------------------------------

    def list_domains(self, org: str) -> list[JSON]:
        return self._list(f"/organizations/{self._org_id(org)}/domains")

    def add_domain(
        self,
        org: str,
        name: str,
        *,
        validated: bool,
        justification: str | None,
        days: int,
        scope: str = "exact",
    ) -> JSON:
        """Add, and with ``validated`` record a manual validation; undone if that fails."""
        text = (justification or "").strip()
        if validated and not MIN_JUSTIFICATION <= len(text) <= MAX_JUSTIFICATION:
            raise ConsoleError(
                "a manual validation needs a justification of "
                f"{MIN_JUSTIFICATION}-{MAX_JUSTIFICATION} characters"
            )
        org_id = self._org_id(org)
        added = self._object("POST", f"/organizations/{org_id}/domains", body={"name": name})
        if not validated:
            return added
        domain_id = int(added["id"])
        try:
            return self.validate_manually(domain_id, justification=text, days=days, scope=scope)
        except ApiError as failed:
            try:
                self._request("DELETE", f"/domains/{domain_id}")
            except ApiError as also:
                raise ApiError(
                    f"{failed}; the domain (id {domain_id}) stays added, unvalidated: {also}",
                    failed.status,
                ) from failed
            raise

    def get_domain(self, domain_id: int) -> JSON:
        return self._object("GET", f"/domains/{domain_id}")

    def remove_domain(self, domain_id: int) -> JSON:
        """Remove the domain (and its delegations); returns it as it was."""
        found = self.get_domain(domain_id)
        self._request("DELETE", f"/domains/{domain_id}")
        return found

    def validate_manually(
        self, domain_id: int, *, justification: str, days: int, scope: str = "exact"
    ) -> JSON:
        body = {"method": "manual", "justification": justification, "days": days, "scope": scope}
        return self._object("POST", f"/domains/{domain_id}/validation", body=body)

    def start_http01(self, domain_id: int) -> JSON:
        return self._object("POST", f"/domains/{domain_id}/validation", body={"method": "http-01"})

    def start_dns(self, domain_id: int) -> JSON:
        return self._object("POST", f"/domains/{domain_id}/validation", body={"method": "dns"})

    def check_domain(self, domain_id: int) -> JSON:
        return self._object("POST", f"/domains/{domain_id}/validation/check")

    def unvalidate(self, domain_id: int) -> JSON:
        return self._object("DELETE", f"/domains/{domain_id}/validation")

    def delegate(self, domain_id: int, *, account_id: str | None, eab_kid: str | None) -> JSON:
        body = {k: v for k, v in (("account_id", account_id), ("eab_kid", eab_kid)) if v}
        return self._object("POST", f"/domains/{domain_id}/delegations", body=body)

    def list_delegations(self, domain_id: int) -> list[JSON]:
        return self._list(f"/domains/{domain_id}/delegations")

    def undelegate(self, delegation_id: int) -> None:
        self._request("DELETE", f"/delegations/{delegation_id}")

    # -- endpoints, EAB credentials --------------------------------------------------------

    def list_endpoints(self) -> list[JSON]:
        return self._list("/endpoints")

    def mint_eab(self, org: str, endpoint: str, *, days: float | None) -> JSON:
        body: JSON = {"org_id": self._org_id(org), "endpoint": endpoint}
        if days is not None:
            body["days"] = days
        return self._object("POST", "/eab", body=body)

    def list_eab(self) -> list[JSON]:
        return self._list("/eab")

    def get_eab(self, kid: str) -> JSON:
        return self._object("GET", f"/eab/{_segment(kid)}")

    def revoke_eab(self, kid: str) -> JSON:
        done = self._object("POST", f"/eab/{_segment(kid)}/revoke")
        # Older servers leave the organisation's name out of this answer.
        return done if done.get("org") is not None else self.get_eab(kid)

    # -- accounts, certificates, audit -----------------------------------------------------

    def list_accounts(self) -> list[JSON]:
        return self._list("/accounts")

    def get_account(self, account_id: str) -> JSON:
        return self._object("GET", f"/accounts/{_segment(account_id)}")

    def deactivate_account(self, account_id: str) -> JSON:
        return self._object("POST", f"/accounts/{_segment(account_id)}/deactivate")

    def list_certificates(
        self,
        *,
        org: str | None = None,
        endpoint: str | None = None,
        name: str | None = None,
        expiring_within_days: int | None = None,
        revoked: bool | None = None,
    ) -> list[JSON]:
        params: dict[str, str | int] = {}
        if org is not None:
            params["org_id"] = self._org_id(org)
        if endpoint is not None:
            params["endpoint"] = endpoint
        if name is not None:
            params["name"] = name
        if expiring_within_days is not None:
            params["expiring_within_days"] = expiring_within_days
        if revoked is not None:
            params["revoked"] = "true" if revoked else "false"
        return self._list("/certificates", params)

    def get_certificate(self, cert_id: str) -> JSON:
        return self._object("GET", f"/certificates/{_segment(cert_id)}")

    def certificate_pem(self, cert_id: str) -> str:
        return self._request("GET", f"/certificates/{_segment(cert_id)}/pem").text

    def revoke_certificate(self, cert_id: str, *, reason: int) -> JSON:
        path = f"/certificates/{_segment(cert_id)}/revoke"
        return self._object("POST", path, body={"reason": reason})

    def pull_forward_renewals(
        self,
        *,
        org: str | None = None,
        endpoint: str | None = None,
        issuer: str | None = None,
        name: str | None = None,
        serials: tuple[str, ...] = (),
        reason: str,
        within_hours: float,
    ) -> JSON:
        body: dict[str, object] = {"reason": reason, "within_hours": within_hours}
        if org is not None:
            body["org_id"] = self._org_id(org)
        for key, value in (("endpoint", endpoint), ("issuer", issuer), ("name", name)):
            if value is not None:
                body[key] = value
        if serials:
            body["serials"] = list(serials)
        return self._object("POST", "/certificates/renewal-windows", body=body)

    def audit(self, limit: int) -> list[JSON]:
        return self._list("/audit", {"limit": limit})

    def verify_audit(self) -> JSON:
        return self._object("GET", "/audit/verify")

    def whoami(self) -> JSON:
        return self._object("GET", "/whoami")


class NotFoundError(ApiError, NotFound):
    """HTTP 404."""


def _segment(value: str) -> str:
    """A user-given id as one URL path segment (a '/' or '..' in it cannot change the route)."""
    if value in ("", ".", ".."):
        raise ConsoleError(f"{value!r} is not an id")
    return quote(value, safe="")
