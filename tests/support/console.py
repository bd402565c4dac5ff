"""Helpers for tests of the console REST API (``/admin/api/v1``) against a running server.

Tokens are created straight in the database (as ``acmefleet token create`` would); the API is
then driven over real HTTPS with httpx, trusting only the server's CA bundle.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from acmefleet.clock import SystemClock
from acmefleet.console import tokens
from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import AcmefleetServer
from tests.support.procs import tls_context

API_PREFIX = "/admin/api/v1"


def create_token(server: AcmefleetServer, role: str = "admin", name: str | None = None) -> str:
    """A new console token (``acmefleet_<id>_<secret>``) with ``role``; the secret is only here."""
    with server.db() as db, db.write() as conn:
        token, _principal = tokens.create(
            conn,
            name=name or f"test-{role}",
            role=role,
            actor="test",
            now=SystemClock().now(),
        )
    return token


def revoke_token(server: AcmefleetServer, token: str) -> None:
    token_id = token.split("_", 2)[1]
    with server.db() as db, db.write() as conn:
        tokens.revoke(conn, token_id, actor="test", now=SystemClock().now())


def api_client(server: AcmefleetServer, token: str | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client for the API (base URL ``.../admin/api/v1``), bearer ``token`` if given."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.Client(
        base_url=f"{server.base_url}{API_PREFIX}",
        verify=tls_context(server.ca_bundle),
        headers=headers,
        timeout=kwargs.pop("timeout", 30.0),
        trust_env=False,
        **kwargs,
    )


def error_body(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """The API's JSON error document ``{"error": code, "detail": ...}``; checks the status."""
    assert response.status_code < 500, f"server error {response.status_code}: {response.text}"
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text)
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.headers.get("content-type"),
        response.text,
    )
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"], body
    return body


def ok_json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


class ConsoleApi:
    """An admin (or auditor) API session with shortcuts for the common calls.

    EAB keys minted through it are recorded in ``server.minted_secrets``, so the shared
    fixture's teardown also checks that none of them reached the server log.
    """

    def __init__(self, server: AcmefleetServer, token: str) -> None:
        self.server = server
        self.token = token
        self.http = api_client(server, token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ConsoleApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_org(self, name: str) -> dict[str, Any]:
        return dict(ok_json(self.http.post("/organizations", json={"name": name}), 201))

    def add_domain(self, org_id: int, name: str) -> dict[str, Any]:
        response = self.http.post(f"/organizations/{org_id}/domains", json={"name": name})
        return dict(ok_json(response, 201))

    def validate_manually(
        self,
        domain_id: int,
        days: int | None = None,
        justification: str = "checked by tests",
        scope: str | None = None,
    ) -> dict[str, Any]:
        """A manual validation; without ``scope`` the server's default (``exact``)."""
        body: dict[str, Any] = {"method": "manual", "justification": justification}
        if days is not None:
            body["days"] = days
        if scope is not None:
            body["scope"] = scope
        return dict(ok_json(self.http.post(f"/domains/{domain_id}/validation", json=body)))

    def mint(self, org_id: int, endpoint: str, **extra: Any) -> dict[str, Any]:
        response = self.http.post("/eab", json={"org_id": org_id, "endpoint": endpoint, **extra})
        minted = dict(ok_json(response, 201))
        self.server.minted_secrets.append(minted["hmac_key"])
        return minted

    def delegate(self, domain_id: int, **target: str) -> dict[str, Any]:
        response = self.http.post(f"/domains/{domain_id}/delegations", json=target)
        return dict(ok_json(response, 201))


@contextmanager
def console_api(server: AcmefleetServer, role: str = "admin") -> Iterator[ConsoleApi]:
    with ConsoleApi(server, create_token(server, role)) as api:
        yield api


def acme_account(server: AcmefleetServer, minted: dict[str, Any]) -> AcmeClient:
    """A registered ACME client on the minted credential's endpoint (close it after use)."""
    acme = AcmeClient(server.directory(minted["endpoint"]), server.ca_bundle)
    response = acme.new_account(
        (minted["kid"], minted["hmac_key"]), contact=["mailto:t@example.com"]
    )
    assert response.status_code == 201, response.text
    return acme


def account_id(acme: AcmeClient) -> str:
    assert acme.kid is not None
    return acme.kid.rsplit("/", 1)[-1]


class Http01Responder:
    """A real web server on the port the server's http-01 validator connects to.

    It answers ``/.well-known/acme-challenge/<token>`` with whatever ``respond`` set for
    the token (404 otherwise) and records the paths it was asked for. ``delay`` (seconds,
    default none) answers each request after a pause it returns, e.g. a random one.
    """

    def __init__(self, port: int, delay: Callable[[], float] | None = None) -> None:
        self.answers: dict[str, str] = {}
        self.requests: list[str] = []
        answers, requests = self.answers, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                if delay is not None:
                    time.sleep(delay())
                prefix = "/.well-known/acme-challenge/"
                token = self.path[len(prefix) :] if self.path.startswith(prefix) else None
                body = answers.get(token) if token else None
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                if body is not None:
                    with contextlib.suppress(OSError):  # the validator may have gone
                        self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def respond(self, token: str, content: str) -> None:
        self.answers[token] = content

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
