"""The console REST API (/admin/api/v1) against a real server: every route, every role.

One server for the module (the shared ``acmefleet`` fixture). A fixed "world" (an
organisation, domains, a delegation, an unused and a bound EAB credential, an ACME account
and a certificate) gives every route a real object to act on; the admin happy paths build
their own objects so the world stays as it was for the role, 401, 404 and bad-body checks,
which all compare ``server.snapshot()`` (every business row) before and after.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509

from acmefleet.baseline import dcv_reuse_period
from tests.support.acme_client import AcmeClient, make_csr, problem_type
from tests.support.acmefleet_server import AcmefleetServer
from tests.support.clients import fetch_crl
from tests.support.console import (
    ConsoleApi,
    Http01Responder,
    account_id,
    acme_account,
    api_client,
    create_token,
    error_body,
    ok_json,
    revoke_token,
)

pytestmark = pytest.mark.integration

ERR = "urn:ietf:params:acme:error:"
MAX_ID = 2**63 - 1  # the largest id the API accepts (a signed 64-bit column); none exists
TOO_BIG_ID = 2**63  # refused by validation (it used to overflow SQLite: a 500)
OVERSIZED = 300 * 1024  # the console takes at most 256 KiB of body
ISSUED_TOKENS: list[str] = []  # every token this module made: none may leak anywhere


def stamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# ------------------------------------------------------------------ fixtures


def _token(server: AcmefleetServer, role: str, name: str) -> str:
    token = create_token(server, role, name)
    ISSUED_TOKENS.append(token)
    return token


@pytest.fixture(scope="module")
def admin(acmefleet: AcmefleetServer) -> Iterator[ConsoleApi]:
    with ConsoleApi(acmefleet, _token(acmefleet, "admin", "api-admin")) as api:
        yield api


@pytest.fixture(scope="module")
def auditor(acmefleet: AcmefleetServer) -> Iterator[ConsoleApi]:
    with ConsoleApi(acmefleet, _token(acmefleet, "auditor", "api-auditor")) as api:
        yield api


@pytest.fixture(scope="module")
def anonymous(acmefleet: AcmefleetServer) -> Iterator[httpx.Client]:
    with api_client(acmefleet) as client:
        yield client


@pytest.fixture(scope="module")
def responder(acmefleet: AcmefleetServer) -> Iterator[Http01Responder]:
    web = Http01Responder(acmefleet.http01_port)
    yield web
    web.close()


@dataclass(frozen=True)
class World:
    org_id: int
    domain_id: int
    ip_domain_id: int
    delegation_id: int
    kid: str  # an unused EAB credential (delegated world.example.com)
    bound_kid: str
    account_id: str
    cert_id: str


@pytest.fixture(scope="module")
def world(acmefleet: AcmefleetServer, admin: ConsoleApi) -> World:
    org = admin.create_org("world")
    domain = admin.add_domain(org["id"], "world.example.com")
    ip_domain = admin.add_domain(org["id"], "10.99.0.0/16")
    bound = admin.mint(org["id"], "private")
    with acme_account(acmefleet, bound) as acme:
        acme.issue_certificate(["www.world.example.com"])
        account = account_id(acme)
    unused = admin.mint(org["id"], "private")
    delegation = admin.delegate(domain["id"], eab_kid=unused["kid"])
    certs = ok_json(admin.http.get("/certificates", params={"name": "www.world.example.com"}))
    assert len(certs) == 1
    return World(
        org["id"],
        domain["id"],
        ip_domain["id"],
        delegation["id"],
        unused["kid"],
        bound["kid"],
        account,
        certs[0]["id"],
    )


# ------------------------------------------------------------------ the route table

Body = Callable[[World], dict[str, Any]] | None


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as in the OpenAPI document, relative to /admin/api/v1
    body: Body = None  # a valid body, for routes that take one

    @property
    def writes(self) -> bool:
        return self.method != "GET"

    def url(self, w: World) -> str:
        return self.path.format(**asdict(w))

    def send(self, client: httpx.Client, w: World) -> httpx.Response:
        body = self.body(w) if self.body else None
        return client.request(self.method, self.url(w), json=body)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ROUTES = [
    Route("GET", "/whoami"),
    Route("GET", "/endpoints"),
    Route("GET", "/audit"),
    Route("GET", "/audit/verify"),
    Route("GET", "/organizations"),
    Route("POST", "/organizations", lambda w: {"name": "never-created"}),
    Route("GET", "/organizations/{org_id}"),
    Route("POST", "/organizations/{org_id}/disable"),
    Route("POST", "/organizations/{org_id}/enable"),
    Route("GET", "/organizations/{org_id}/domains"),
    Route("POST", "/organizations/{org_id}/domains", lambda w: {"name": "never.example.com"}),
    Route("GET", "/domains/{domain_id}"),
    Route("DELETE", "/domains/{domain_id}"),
    Route(
        "POST",
        "/domains/{domain_id}/validation",
        lambda w: {"method": "manual", "justification": "not allowed to"},
    ),
    Route("POST", "/domains/{domain_id}/validation/check"),
    Route("DELETE", "/domains/{domain_id}/validation"),
    Route("GET", "/domains/{domain_id}/delegations"),
    Route("POST", "/domains/{domain_id}/delegations", lambda w: {"account_id": w.account_id}),
    Route("DELETE", "/delegations/{delegation_id}"),
    Route("GET", "/eab"),
    Route("POST", "/eab", lambda w: {"org_id": w.org_id, "endpoint": "private"}),
    Route("GET", "/eab/{kid}"),
    Route("POST", "/eab/{kid}/revoke"),
    Route("GET", "/accounts"),
    Route("GET", "/accounts/{account_id}"),
    Route("POST", "/accounts/{account_id}/deactivate"),
    Route("GET", "/certificates"),
    Route("GET", "/certificates/{cert_id}"),
    Route("GET", "/certificates/{cert_id}/pem"),
    Route("POST", "/certificates/{cert_id}/revoke", lambda w: {"reason": 4}),
    Route(
        "POST",
        "/certificates/renewal-windows",
        lambda w: {"name": "never.example.com", "reason": "route table", "within_hours": 1},
    ),
]
# The same writes again with other valid bodies, for the role and authentication checks.
EXTRA_WRITES = [
    Route("POST", "/domains/{domain_id}/validation", lambda w: {"method": "http-01"}),
    Route("POST", "/domains/{domain_id}/delegations", lambda w: {"eab_kid": w.kid}),
    Route("POST", "/organizations/{org_id}/domains", lambda w: {"name": "10.98.0.0/16"}),
]
READS = [r for r in ROUTES if not r.writes]
WRITES = [r for r in ROUTES if r.writes] + EXTRA_WRITES


def test_route_table_covers_the_openapi_document(anonymous: httpx.Client) -> None:
    document = ok_json(anonymous.get("/openapi.json"))
    documented = {
        (method.upper(), path.removeprefix("/admin/api/v1"))
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == {(r.method, r.path) for r in ROUTES}


# ------------------------------------------------------------------ authentication, roles


@pytest.mark.parametrize("route", ROUTES + EXTRA_WRITES, ids=str)
def test_no_token_is_401_and_changes_nothing(
    acmefleet: AcmefleetServer, world: World, anonymous: httpx.Client, route: Route
) -> None:
    before = acmefleet.snapshot()
    response = route.send(anonymous, world)
    assert error_body(response, 401)["error"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert acmefleet.snapshot() == before


BAD_AUTHORIZATIONS = {
    "unknown token": "Bearer acmefleet_0123456789abcdef_secret",
    "not our format": "Bearer abc",
    "empty bearer": "Bearer",
    "basic scheme": "Basic dXNlcjpwYXNz",
    "bare token": "{token}",
    "wrong secret": "Bearer {token_id_part}_wrongsecret",
    "truncated": "Bearer {token_truncated}",
}


@pytest.mark.parametrize("route", ROUTES + EXTRA_WRITES, ids=str)
def test_bad_token_is_401_and_changes_nothing(
    acmefleet: AcmefleetServer, world: World, admin: ConsoleApi, route: Route
) -> None:
    token = admin.token
    before = acmefleet.snapshot()
    for kind, template in BAD_AUTHORIZATIONS.items():
        header = template.format(
            token=token, token_id_part=token.rsplit("_", 1)[0], token_truncated=token[:-1]
        )
        with api_client(acmefleet, headers={"Authorization": header}) as client:
            response = route.send(client, world)
        assert response.status_code == 401, (kind, response.status_code, response.text)
        error_body(response, 401)
    assert acmefleet.snapshot() == before


def test_revoked_token_is_401(acmefleet: AcmefleetServer, world: World) -> None:
    token = _token(acmefleet, "admin", "soon-revoked")
    with api_client(acmefleet, token) as client:
        assert ok_json(client.get("/whoami"))["name"] == "soon-revoked"
        revoke_token(acmefleet, token)
        before = acmefleet.snapshot()
        for route in ROUTES:
            error_body(route.send(client, world), 401)
        assert acmefleet.snapshot() == before


def test_whoami(admin: ConsoleApi, auditor: ConsoleApi) -> None:
    me = ok_json(admin.http.get("/whoami"))
    assert me["name"] == "api-admin" and me["role"] == "admin"
    assert me["token_id"] == admin.token.split("_")[1]
    assert ok_json(auditor.http.get("/whoami"))["role"] == "auditor"
    lower = {"Authorization": f"bearer {admin.token}"}
    assert ok_json(admin.http.get("/whoami", headers=lower))["role"] == "admin"


@pytest.mark.parametrize("route", READS, ids=str)
def test_auditor_reads_everything(
    acmefleet: AcmefleetServer, world: World, auditor: ConsoleApi, route: Route
) -> None:
    before = acmefleet.snapshot()
    response = route.send(auditor.http, world)
    assert response.status_code == 200, response.text
    if route.path.endswith("/pem"):
        assert "BEGIN CERTIFICATE" in response.text
    else:
        assert response.json()
    assert acmefleet.snapshot() == before


@pytest.mark.parametrize("route", WRITES, ids=str)
def test_auditor_writes_are_403_and_change_nothing(
    acmefleet: AcmefleetServer, world: World, auditor: ConsoleApi, route: Route
) -> None:
    before = acmefleet.snapshot()
    body = error_body(route.send(auditor.http, world), 403)
    assert body["error"] == "forbidden" and "auditor" in body["detail"]
    assert acmefleet.snapshot() == before


def test_world_is_intact_after_the_role_checks(admin: ConsoleApi, world: World) -> None:
    assert ok_json(admin.http.get(f"/organizations/{world.org_id}"))["status"] == "active"
    domain = ok_json(admin.http.get(f"/domains/{world.domain_id}"))
    assert not domain["validated"] and not domain["validation_in_progress"]
    assert ok_json(admin.http.get(f"/eab/{world.kid}"))["status"] == "unused"
    assert ok_json(admin.http.get(f"/accounts/{world.account_id}"))["status"] == "valid"
    assert ok_json(admin.http.get(f"/certificates/{world.cert_id}"))["revoked"] is None
    delegations = ok_json(admin.http.get(f"/domains/{world.domain_id}/delegations"))
    assert [d["id"] for d in delegations] == [world.delegation_id]


# ------------------------------------------------------------------ unknown ids, bad requests

UNKNOWN = [
    Route("GET", f"/organizations/{MAX_ID}"),
    Route("GET", "/organizations/999999"),
    Route("POST", f"/organizations/{MAX_ID}/disable"),
    Route("POST", f"/organizations/{MAX_ID}/enable"),
    Route("GET", f"/organizations/{MAX_ID}/domains"),
    Route("POST", f"/organizations/{MAX_ID}/domains", lambda w: {"name": "x.example.com"}),
    Route("GET", f"/domains/{MAX_ID}"),
    Route("DELETE", f"/domains/{MAX_ID}"),
    Route(
        "POST",
        f"/domains/{MAX_ID}/validation",
        lambda w: {"method": "manual", "justification": "unknown"},
    ),
    Route("POST", f"/domains/{MAX_ID}/validation", lambda w: {"method": "http-01"}),
    Route("POST", f"/domains/{MAX_ID}/validation/check"),
    Route("DELETE", f"/domains/{MAX_ID}/validation"),
    Route("GET", f"/domains/{MAX_ID}/delegations"),
    Route("POST", f"/domains/{MAX_ID}/delegations", lambda w: {"account_id": w.account_id}),
    Route("POST", "/domains/{domain_id}/delegations", lambda w: {"account_id": "no-such"}),
    Route("POST", "/domains/{domain_id}/delegations", lambda w: {"eab_kid": "no-such"}),
    Route("DELETE", f"/delegations/{MAX_ID}"),
    Route("GET", "/eab/no-such-kid"),
    Route("POST", "/eab/no-such-kid/revoke"),
    Route("POST", "/eab", lambda w: {"org_id": MAX_ID, "endpoint": "private"}),
    Route("POST", "/eab", lambda w: {"org_id": w.org_id, "endpoint": "no-such-endpoint"}),
    Route("GET", "/accounts/no-such-account"),
    Route("POST", "/accounts/no-such-account/deactivate"),
    Route("GET", "/certificates/no-such-cert"),
    Route("GET", "/certificates/no-such-cert/pem"),
    Route("POST", "/certificates/no-such-cert/revoke", lambda w: {"reason": 0}),
    Route("GET", "/no-such-resource"),
    Route("GET", "/organizations/1/no-such-resource"),
]


@pytest.mark.parametrize("route", UNKNOWN, ids=str)
def test_unknown_ids_are_404_json(
    acmefleet: AcmefleetServer, world: World, admin: ConsoleApi, route: Route
) -> None:
    before = acmefleet.snapshot()
    assert error_body(route.send(admin.http, world), 404)["error"] == "not_found"
    assert acmefleet.snapshot() == before


ID_ROUTES = [
    r for r in ROUTES + EXTRA_WRITES if re.search(r"\{(org|domain|delegation)_id\}", r.path)
]


@pytest.mark.parametrize("route", ID_ROUTES, ids=str)
def test_out_of_range_ids_are_422(
    acmefleet: AcmefleetServer, world: World, admin: ConsoleApi, route: Route
) -> None:
    """Regression: ids past 2**63-1 reached SQLite and overflowed (500, a traceback)."""
    before = acmefleet.snapshot()
    for bad_id in (TOO_BIG_ID, -TOO_BIG_ID, 10**30, 0, -1, "abc", "1.5"):
        path = re.sub(r"\{(org|domain|delegation)_id\}", str(bad_id), route.path)
        response = Route(route.method, path, route.body).send(admin.http, world)
        assert response.status_code == 422, (bad_id, response.status_code, response.text)
        assert error_body(response, 422)["error"] == "invalid_request"
    assert acmefleet.snapshot() == before


def test_wrong_method_is_405_json(admin: ConsoleApi) -> None:
    assert error_body(admin.http.put("/organizations"), 405)["error"] == "method_not_allowed"
    assert error_body(admin.http.delete("/eab"), 405)


# Routes with a body, and bodies each must refuse (4xx, JSON, nothing stored).
RAW_BAD_BODIES: dict[str, bytes] = {
    "malformed": b'{"name": ',
    "not json": b"name=x",
    "empty": b"",
    "null": b"null",
    "array": b"[]",
    "string": b'"text"',
    "number": b"42",
    "bad utf-8": b'{"name": "\xff\xfe"}',
    "lone surrogate": b'{"name": "\\ud800", "account_id": "\\udfff", "endpoint": "\\ud800"}',
    "deeply nested": b"[" * 100_000,
    "NaN": b'{"name": NaN, "org_id": NaN, "days": NaN, "reason": NaN}',
}

BAD_BODIES: dict[str, list[dict[str, Any]]] = {
    "/organizations": [
        {},
        {"name": 5},
        {"name": ["a"]},
        {"name": None},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 201},
        {"name": "tab\tinside"},
        {"name": "ok-name", "status": "active"},
        {"name": "ok-name", "id": 1},
    ],
    "/organizations/{org_id}/domains": [
        {},
        {"name": 5},
        {"name": {"dns": "a.example.com"}},
        {"name": ""},
        {"name": "x" * 254},
        {"name": "*.wild.example.com"},
        {"name": "no spaces.example.com"},
        {"name": "single"},
        {"name": "10.0.0.0/99"},
        {"name": "ok.example.com", "validated": True},
        {"name": "ok.example.com", "org_id": 1},
    ],
    "/domains/{domain_id}/validation": [
        {},
        {"method": "dns-01"},
        {"method": None},
        {"method": "manual"},
        {"method": "manual", "justification": "ok"},
        {"method": "manual", "justification": "   x   "},
        {"method": "manual", "justification": "x" * 1001},
        {"method": "manual", "justification": 12345},
        {"method": "manual", "justification": "fine reason", "days": 0},
        {"method": "manual", "justification": "fine reason", "days": 826},
        {"method": "manual", "justification": "fine reason", "days": 2.5},
        {"method": "manual", "justification": "fine reason", "days": "ten"},
        {"method": "manual", "justification": "fine reason", "validated": True},
        {"method": "http-01", "token": "mine"},
        {"method": "http-01", "scope": "subdomains"},
        {"method": "manual", "justification": "fine reason", "scope": "everything"},
        {"method": "manual", "justification": "fine reason", "scope": ["subdomains"]},
    ],
    "/domains/{domain_id}/delegations": [
        {},
        {"account_id": None, "eab_kid": None},
        {"account_id": "{account_id}", "eab_kid": "{kid}"},
        {"account_id": 5},
        {"eab_kid": ["a"]},
        {"account_id": "x" * 65},
        {"account_id": "{account_id}", "domain_id": 1},
    ],
    "/eab": [
        {},
        {"org_id": "{org_id}"},
        {"endpoint": "private"},
        {"org_id": "one", "endpoint": "private"},
        {"org_id": 0, "endpoint": "private"},
        {"org_id": TOO_BIG_ID, "endpoint": "private"},
        {"org_id": 1.5, "endpoint": "private"},
        {"org_id": "{org_id}", "endpoint": ""},
        {"org_id": "{org_id}", "endpoint": 7},
        {"org_id": "{org_id}", "endpoint": "x" * 65},
        {"org_id": "{org_id}", "endpoint": "private", "days": 0},
        {"org_id": "{org_id}", "endpoint": "private", "days": -1},
        {"org_id": "{org_id}", "endpoint": "private", "days": 3651},
        {"org_id": "{org_id}", "endpoint": "private", "days": 1e-300},
        {"org_id": "{org_id}", "endpoint": "private", "days": "forever"},
        {"org_id": "{org_id}", "endpoint": "private", "hmac_key": "chosen-by-me"},
        {"org_id": "{org_id}", "endpoint": "private", "kid": "chosen-by-me"},
    ],
    "/certificates/renewal-windows": [
        {},
        {"reason": "nothing selected"},
        {"name": "a.example.com"},
        {"name": "a.example.com", "reason": ""},
        {"name": "a.example.com", "reason": "r\u0000"},
        {"name": "a.example.com", "reason": "x" * 501},
        {"name": "a.example.com", "reason": "r", "within_hours": 0},
        {"name": "a.example.com", "reason": "r", "within_hours": -1},
        {"name": "a.example.com", "reason": "r", "within_hours": 2161},
        {"name": "a.example.com", "reason": "r", "within_hours": "soon"},
        {"serials": "abc", "reason": "r"},
        {"serials": ["not-hex"], "reason": "r"},
        {"serials": ["x" * 65], "reason": "r"},
        {"serials": ["ab12"], "reason": "r"},
        {"org_id": 0, "reason": "r"},
        {"org_id": TOO_BIG_ID, "reason": "r"},
        {"endpoint": "", "reason": "r"},
        {"name": "a.example.com", "reason": "r", "window": {"start": "now"}},
    ],
    "/certificates/{cert_id}/revoke": [
        {"reason": 2},
        {"reason": 6},
        {"reason": 8},
        {"reason": 11},
        {"reason": -1},
        {"reason": "four"},
        {"reason": 4.5},
        {"reason": None},
        {"reason": 4, "revoked": True},
    ],
}


def _fill(value: Any, w: World) -> Any:
    """Put the world's ids into a bad body (``"{org_id}"`` → the integer id...)."""
    if isinstance(value, dict):
        return {k: _fill(v, w) for k, v in value.items()}
    if isinstance(value, str) and re.fullmatch(r"\{\w+\}", value):
        return asdict(w)[value[1:-1]]
    return value


BODY_ROUTES = sorted(BAD_BODIES)


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_bad_bodies_are_4xx_json_and_store_nothing(
    acmefleet: AcmefleetServer, world: World, admin: ConsoleApi, path: str
) -> None:
    url = path.format(**asdict(world))
    before = acmefleet.snapshot()
    outcomes: list[tuple[Any, int]] = []
    for body in BAD_BODIES[path]:
        response = admin.http.post(url, json=_fill(body, world))
        outcomes.append((body, response.status_code))
        error_body(response)
    for name, raw in RAW_BAD_BODIES.items():
        for content_type in ("application/json", "text/plain"):
            response = admin.http.post(url, content=raw, headers={"Content-Type": content_type})
            outcomes.append((name, response.status_code))
            error_body(response)
    assert acmefleet.snapshot() == before, outcomes


@pytest.mark.parametrize("route", WRITES, ids=str)
def test_oversized_bodies_are_413(
    acmefleet: AcmefleetServer,
    world: World,
    admin: ConsoleApi,
    auditor: ConsoleApi,
    anonymous: httpx.Client,
    route: Route,
) -> None:
    url = route.url(world)
    big = json.dumps({"name": "x" * OVERSIZED, "justification": "y"}).encode()
    headers = {"Content-Type": "application/json"}
    before = acmefleet.snapshot()
    for client in (admin.http, auditor.http, anonymous):  # the size is checked first
        response = client.request(route.method, url, content=big, headers=headers)
        assert error_body(response, 413)["error"] == "too_large"
    chunks = (b"x" * 65536 for _ in range(5))  # no Content-Length: chunked
    response = admin.http.request(route.method, url, content=chunks, headers=headers)
    assert error_body(response, 413)["error"] == "too_large"
    assert acmefleet.snapshot() == before


def test_body_limit_is_256_kib(acmefleet: AcmefleetServer, admin: ConsoleApi) -> None:
    headers = {"Content-Type": "application/json"}
    prefix, suffix = b'{"name":"', b'"}'
    at_limit = prefix + b"x" * (256 * 1024 - len(prefix) - len(suffix)) + suffix
    before = acmefleet.snapshot()
    response = admin.http.post("/organizations", content=at_limit, headers=headers)
    assert error_body(response, 422)["error"] == "invalid_request"  # read, then refused
    response = admin.http.post("/organizations", content=at_limit + b" ", headers=headers)
    assert error_body(response, 413)["error"] == "too_large"
    assert acmefleet.snapshot() == before


# ------------------------------------------------------------------ organisations


def test_organisations(acmefleet: AcmefleetServer, admin: ConsoleApi) -> None:
    created = admin.create_org("  Org One  ")
    assert created["name"] == "Org One" and created["status"] == "active"
    assert abs(stamp(created["created"]) - datetime.now(UTC)) < timedelta(minutes=1)
    duplicate = admin.http.post("/organizations", json={"name": "Org One"})
    assert error_body(duplicate, 409)["error"] == "conflict"
    listed = ok_json(admin.http.get("/organizations"))
    assert created in listed
    assert [o["name"] for o in listed] == sorted(o["name"] for o in listed)
    org_url = f"/organizations/{created['id']}"
    assert ok_json(admin.http.get(org_url)) == created
    disabled = ok_json(admin.http.post(f"{org_url}/disable"))
    assert disabled == {**created, "status": "disabled"}
    assert ok_json(admin.http.get(org_url))["status"] == "disabled"
    enabled = ok_json(admin.http.post(f"{org_url}/enable"))
    assert enabled == created
    events = ok_json(admin.http.get("/audit", params={"limit": 3}))
    assert [e["action"] for e in events] == ["org.enable", "org.disable", "org.create"]
    assert {e["target"] for e in events} == {"Org One"}
    assert {e["actor"] for e in events} == {"token:api-admin"}
    assert {e["source"] for e in events} == {"127.0.0.1"}
    assert acmefleet.count("organizations", name="Org One") == 1


def test_disabled_organisation_cannot_order_or_mint(
    acmefleet: AcmefleetServer, admin: ConsoleApi
) -> None:
    org = admin.create_org("disabled-co")
    admin.add_domain(org["id"], "disabled-co.example.com")
    minted = admin.mint(org["id"], "private")
    with acme_account(acmefleet, minted) as acme:
        assert acme.issue_certificate(["a.disabled-co.example.com"])
        pending = acme.new_order(["b.disabled-co.example.com"])
        assert pending.status_code == 201 and pending.json()["status"] == "ready"
        ok_json(admin.http.post(f"/organizations/{org['id']}/disable"))

        refused = acme.new_order(["c.disabled-co.example.com"])
        assert refused.status_code == 403, refused.text
        assert problem_type(refused) == ERR + "unauthorized"
        csr, _ = make_csr(["b.disabled-co.example.com"])
        late = acme.finalize(pending.json(), csr)
        assert problem_type(late) == ERR + "unauthorized", late.text

        before = acmefleet.snapshot()
        response = admin.http.post("/eab", json={"org_id": org["id"], "endpoint": "private"})
        assert "disabled" in error_body(response, 400)["detail"]
        assert "hmac_key" not in response.text
        assert acmefleet.snapshot() == before

        ok_json(admin.http.post(f"/organizations/{org['id']}/enable"))
        assert acme.new_order(["c.disabled-co.example.com"]).status_code == 201
    assert acmefleet.count("certificates", org_id=org["id"]) == 1


# ------------------------------------------------------------------ domains and validation


def test_domains(acmefleet: AcmefleetServer, admin: ConsoleApi) -> None:
    org = admin.create_org("domain-co")
    added = admin.add_domain(org["id"], "  Shop.Domain-Co.EXAMPLE.com ")
    assert added == {
        "id": added["id"],
        "org_id": org["id"],
        "name": "shop.domain-co.example.com",
        "kind": "dns",
        "validated": False,
        "validated_at": None,
        "validated_until": None,
        "validation_method": None,
        "validation_scope": None,
        "validated_by": None,
        "validation_in_progress": False,
        "check_method": None,
        "check_expires": None,
    }
    network = admin.add_domain(org["id"], "192.0.2.77/24")
    assert network["name"] == "192.0.2.0/24" and network["kind"] == "ip"
    again = admin.http.post(
        f"/organizations/{org['id']}/domains", json={"name": "shop.domain-co.example.com"}
    )
    assert error_body(again, 409)["error"] == "conflict"
    listed = ok_json(admin.http.get(f"/organizations/{org['id']}/domains"))
    assert [d["name"] for d in listed] == ["192.0.2.0/24", "shop.domain-co.example.com"]
    assert ok_json(admin.http.get(f"/domains/{added['id']}")) == added

    minted = admin.mint(org["id"], "private")
    admin.delegate(added["id"], eab_kid=minted["kid"])
    removed = admin.http.delete(f"/domains/{added['id']}")
    assert removed.status_code == 204 and removed.content == b""
    error_body(admin.http.get(f"/domains/{added['id']}"), 404)
    error_body(admin.http.get(f"/domains/{added['id']}/delegations"), 404)
    assert acmefleet.count("domain_delegations", domain_id=added["id"]) == 0
    listed = ok_json(admin.http.get(f"/organizations/{org['id']}/domains"))
    assert [d["name"] for d in listed] == ["192.0.2.0/24"]
    error_body(admin.http.delete(f"/domains/{added['id']}"), 404)
    event = ok_json(admin.http.get("/audit", params={"limit": 1}))[0]
    assert (event["action"], event["target"]) == ("domain.remove", "shop.domain-co.example.com")


@pytest.mark.parametrize(
    "name", ["evil\n.example.com", "evil.example\n.com", "2001:db8::%x\n/64", "\u212a.example.com"]
)
def test_domain_names_are_ldh_only(
    acmefleet: AcmefleetServer, admin: ConsoleApi, name: str
) -> None:
    """A newline passed the old ``^…$`` label check and was stored (issue 11, item 4)."""
    org = ok_json(admin.http.get("/organizations"))[0]
    before = acmefleet.snapshot()
    response = admin.http.post(f"/organizations/{org['id']}/domains", json={"name": name})
    assert error_body(response, 400)["error"] == "invalid"
    assert acmefleet.snapshot() == before


def test_manual_validation_and_its_removal(acmefleet: AcmefleetServer, admin: ConsoleApi) -> None:
    org = admin.create_org("manual-co")
    domain = admin.add_domain(org["id"], "manual-co.example.com")
    done = admin.validate_manually(domain["id"], days=30, justification="  DNS TXT checked  ")
    assert done["validated"] is True and done["validation_method"] == "manual"
    assert done["validation_scope"] == "exact", "a manual validation is exact unless asked"
    assert done["validated_by"] == "token:api-admin"
    until = stamp(done["validated_until"]) - stamp(done["validated_at"])
    assert until == timedelta(days=30)
    event = ok_json(admin.http.get("/audit", params={"limit": 1}))[0]
    assert event["action"] == "domain.validate" and event["target"] == "manual-co.example.com"
    assert event["details"]["justification"] == "DNS TXT checked"
    assert event["details"]["method"] == "manual"
    assert event["details"]["scope"] == "exact"

    default = admin.validate_manually(domain["id"], scope="subdomains")
    assert stamp(default["validated_until"]) - stamp(default["validated_at"]) == timedelta(days=397)
    assert default["validation_scope"] == "subdomains"
    event = ok_json(admin.http.get("/audit", params={"limit": 1}))[0]
    assert event["details"]["scope"] == "subdomains"
    undone = ok_json(admin.http.delete(f"/domains/{domain['id']}/validation"))
    assert undone["validated"] is False
    assert undone["validated_until"] is None and undone["validation_method"] is None
    assert undone["validation_scope"] is None
    assert ok_json(admin.http.get(f"/domains/{domain['id']}")) == undone

    network = admin.add_domain(org["id"], "198.51.100.0/24")
    assert admin.validate_manually(network["id"])["validated"] is True


def test_http01_validation(
    acmefleet: AcmefleetServer, admin: ConsoleApi, responder: Http01Responder
) -> None:
    org = admin.create_org("http-co")
    domain = admin.add_domain(org["id"], "http-co.example.org")
    url = f"/domains/{domain['id']}/validation"
    error_body(admin.http.post(f"{url}/check"), 400)  # nothing started

    started = ok_json(admin.http.post(url, json={"method": "http-01"}))
    token = started["token"]
    path = f"/.well-known/acme-challenge/{token}"
    assert started == {
        "domain": "http-co.example.org",
        "method": "http-01",
        "token": token,
        "url": f"http://http-co.example.org:{acmefleet.http01_port}{path}",
        "expected_content": f"{token}.acmefleet-domain-validation",
        "scope": "exact",
        "expires": started["expires"],
    }
    assert stamp(started["expires"]) - datetime.now(UTC) > timedelta(days=6, hours=23)
    assert ok_json(admin.http.get(f"/domains/{domain['id']}"))["validation_in_progress"]

    # Nobody serving the token, then the wrong content: 400, not validated.
    assert "failed" in error_body(admin.http.post(f"{url}/check"), 400)["detail"]
    responder.respond(token, f"{token}.something-else")
    failed = error_body(admin.http.post(f"{url}/check"), 400)
    assert failed["error"] == "invalid" and "http-co.example.org" in failed["detail"]
    shown = ok_json(admin.http.get(f"/domains/{domain['id']}"))
    assert shown["validated"] is False and shown["validated_at"] is None
    assert shown["validation_in_progress"] is True
    assert responder.requests.count(path) == 2

    responder.respond(token, started["expected_content"])
    checked = ok_json(admin.http.post(f"{url}/check"))
    assert checked["validated"] is True and checked["validation_method"] == "http-01"
    assert checked["validation_scope"] == "exact", "http-01 proves this one name"
    assert checked["validated_by"] == "token:api-admin"
    assert checked["validation_in_progress"] is False
    # A check the server ran holds for the BR 4.2.1 reuse period in force (200 days now).
    reuse = dcv_reuse_period(stamp(checked["validated_at"]))
    assert stamp(checked["validated_until"]) - stamp(checked["validated_at"]) == reuse
    assert responder.requests.count(path) == 3
    actions = [e["action"] for e in ok_json(admin.http.get("/audit", params={"limit": 4}))]
    assert actions == [
        "domain.validate",
        "domain.validation.fail",
        "domain.validation.fail",
        "domain.validation.start",
    ]
    # The check is spent: a second one needs a new start.
    error_body(admin.http.post(f"{url}/check"), 400)


def test_http01_validation_of_an_ip_network_is_refused(
    acmefleet: AcmefleetServer, world: World, admin: ConsoleApi
) -> None:
    before = acmefleet.snapshot()
    response = admin.http.post(
        f"/domains/{world.ip_domain_id}/validation", json={"method": "http-01"}
    )
    assert "IP" in error_body(response, 400)["detail"]
    assert acmefleet.snapshot() == before


# ------------------------------------------------------------------ delegations


def test_delegation_routes(acmefleet: AcmefleetServer, admin: ConsoleApi) -> None:
    org = admin.create_org("delegate-routes")
    domain = admin.add_domain(org["id"], "routes.delegate.example.com")
    other_org = admin.create_org("delegate-routes-other")
    foreign = admin.mint(other_org["id"], "private")
    minted = admin.mint(org["id"], "private")
    with acme_account(acmefleet, admin.mint(org["id"], "private")) as acme:
        account = account_id(acme)
    url = f"/domains/{domain['id']}/delegations"

    by_account = admin.delegate(domain["id"], account_id=account)
    assert by_account["domain_id"] == domain["id"]
    assert (by_account["account_id"], by_account["eab_kid"]) == (account, None)
    by_kid = admin.delegate(domain["id"], eab_kid=minted["kid"])
    assert (by_kid["account_id"], by_kid["eab_kid"]) == (None, minted["kid"])
    assert ok_json(admin.http.get(url)) == [by_account, by_kid]

    before = acmefleet.snapshot()
    assert error_body(admin.http.post(url, json={"account_id": account}), 409)
    assert error_body(admin.http.post(url, json={"eab_kid": minted["kid"]}), 409)
    refused = admin.http.post(url, json={"eab_kid": foreign["kid"]})
    assert "organisation" in error_body(refused, 400)["detail"]
    assert error_body(admin.http.post(url, json={}), 400)
    assert acmefleet.snapshot() == before

    gone = admin.http.delete(f"/delegations/{by_account['id']}")
    assert gone.status_code == 204 and gone.content == b""
    assert ok_json(admin.http.get(url)) == [by_kid]
    error_body(admin.http.delete(f"/delegations/{by_account['id']}"), 404)
    event = ok_json(admin.http.get("/audit", params={"limit": 1}))[0]
    assert event["action"] == "domain.undelegate"
    assert event["details"] == {"account": account, "eab_kid": None}


def test_delegation_limits_what_accounts_may_order(
    acmefleet: AcmefleetServer, admin: ConsoleApi
) -> None:
    org = admin.create_org("deleg-co")
    alpha = admin.add_domain(org["id"], "alpha-deleg.example.net")
    beta = admin.add_domain(org["id"], "beta-deleg.example.net")
    rejected = ERR + "rejectedIdentifier"

    a_minted = admin.mint(org["id"], "private")
    b_minted = admin.mint(org["id"], "private")
    admin.delegate(beta["id"], eab_kid=b_minted["kid"])  # before B's account exists
    with (
        acme_account(acmefleet, a_minted) as a,
        acme_account(acmefleet, b_minted) as b,
        acme_account(acmefleet, admin.mint(org["id"], "private")) as c,
    ):
        # No delegation for A yet: every domain of the organisation.
        for name in ("www.alpha-deleg.example.net", "www.beta-deleg.example.net"):
            assert a.new_order([name]).status_code == 201
        delegation = admin.delegate(alpha["id"], account_id=account_id(a))

        # A: only under alpha.
        assert a.issue_certificate(["api.alpha-deleg.example.net"])
        refused = a.new_order(["api.beta-deleg.example.net"])
        assert problem_type(refused) == rejected, refused.text
        assert "delegated" in refused.json()["detail"]
        mixed = a.new_order(["x.alpha-deleg.example.net", "x.beta-deleg.example.net"])
        assert problem_type(mixed) == rejected

        # B was bound with the delegated kid: only under beta.
        assert b.issue_certificate(["api.beta-deleg.example.net"])
        assert problem_type(b.new_order(["api.alpha-deleg.example.net"])) == rejected

        # C has no delegation: all the organisation's domains.
        for name in ("c.alpha-deleg.example.net", "c.beta-deleg.example.net"):
            assert c.new_order([name]).status_code == 201

        # Without its last delegation, A may order nothing: a restriction fails closed
        # (it used to widen A back to every domain of the organisation).
        assert admin.http.delete(f"/delegations/{delegation['id']}").status_code == 204
        for name in ("again.beta-deleg.example.net", "again.alpha-deleg.example.net"):
            closed = a.new_order([name])
            assert problem_type(closed) == rejected, closed.text
            assert "no domain is delegated" in closed.json()["detail"]
        # Delegated again, A orders under that domain only.
        admin.delegate(alpha["id"], account_id=account_id(a))
        assert a.new_order(["again.alpha-deleg.example.net"]).status_code == 201
        assert problem_type(a.new_order(["again.beta-deleg.example.net"])) == rejected


def _ready_order(acme: AcmeClient, name: str) -> dict[str, Any]:
    created = acme.new_order([name])
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    assert order["status"] == "ready", order
    return order


def test_finalize_rechecks_authority_after_the_order_was_ready(
    acmefleet: AcmefleetServer, admin: ConsoleApi
) -> None:
    """A ready order does not outlive the domain, validation or delegation it stood on."""
    org = admin.create_org("stale-co")
    owned = admin.add_domain(org["id"], "owned-stale.example.net")
    kept = admin.add_domain(org["id"], "kept-stale.example.net")
    validated = admin.add_domain(org["id"], "valid-stale.example.net")
    admin.validate_manually(validated["id"], days=30)
    unauthorized = ERR + "unauthorized"
    with (
        acme_account(acmefleet, admin.mint(org["id"], "private")) as private,
        acme_account(acmefleet, admin.mint(org["id"], "public")) as public,
    ):
        # Private endpoint: the domain is removed from the organisation.
        removed_order = _ready_order(private, "www.owned-stale.example.net")
        kept_order = _ready_order(private, "www.kept-stale.example.net")
        assert admin.http.delete(f"/domains/{owned['id']}").status_code == 204
        csr, _ = make_csr(["www.owned-stale.example.net"])
        refused = private.finalize(removed_order, csr)
        assert problem_type(refused) == unauthorized, refused.text
        assert refused.status_code == 403
        assert "www.owned-stale.example.net" in refused.json()["detail"]

        # Public endpoint: the console validation that spared the challenge is withdrawn.
        spared_order = _ready_order(public, "valid-stale.example.net")
        assert admin.http.delete(f"/domains/{validated['id']}/validation").status_code == 200
        csr, _ = make_csr(["valid-stale.example.net"])
        refused = public.finalize(spared_order, csr)
        assert problem_type(refused) == unauthorized, refused.text
        assert "no longer validated" in refused.json()["detail"]

        # A delegation made after the order narrows it too.
        other = admin.mint(org["id"], "private")
        admin.delegate(kept["id"], eab_kid=other["kid"])
        admin.delegate(kept["id"], account_id=account_id(private))
        csr, _ = make_csr(["www.kept-stale.example.net"])
        assert private.finalize(kept_order, csr).status_code == 200  # still delegated: fine
    assert acmefleet.count("certificates", org_id=org["id"]) == 1


# ------------------------------------------------------------------ endpoints and EAB


def test_endpoints(acmefleet: AcmefleetServer, auditor: ConsoleApi) -> None:
    endpoints = {e["name"]: e for e in ok_json(auditor.http.get("/endpoints"))}
    assert set(endpoints) == {"private", "public"}
    for name, endpoint in endpoints.items():
        assert endpoint["directory"] == acmefleet.directory(name)
        assert endpoint["type"] == endpoint["ca"] == name
        assert endpoint["default_profile"] in endpoint["profiles"]
    assert set(endpoints["public"]["profiles"]) == {"public-dv"}
    with api_client(acmefleet) as client:
        directory = client.get(endpoints["private"]["directory"])
    assert directory.status_code == 200 and "newAccount" in directory.json()


def test_eab_credentials(acmefleet: AcmefleetServer, admin: ConsoleApi, world: World) -> None:
    minted = admin.mint(world.org_id, "public", days=2)
    assert set(minted) == {"kid", "hmac_key", "endpoint", "directory", "expires"}
    assert minted["endpoint"] == "public"
    assert minted["directory"] == acmefleet.directory("public")
    assert abs(stamp(minted["expires"]) - datetime.now(UTC) - timedelta(days=2)) < timedelta(
        minutes=1
    )
    shown = ok_json(admin.http.get(f"/eab/{minted['kid']}"))
    assert shown == {
        "kid": minted["kid"],
        "org_id": world.org_id,
        "org": "world",
        "endpoint": "public",
        "status": "unused",
        "account_id": None,
        "created": shown["created"],
        "expires": minted["expires"],
        "bound": None,
        "revoked": None,
    }
    listed = {c["kid"]: c for c in ok_json(admin.http.get("/eab"))}
    assert listed[minted["kid"]] == shown
    bound = listed[world.bound_kid]
    assert bound["status"] == "bound" and bound["account_id"] == world.account_id

    revoked = ok_json(admin.http.post(f"/eab/{minted['kid']}/revoke"))
    assert revoked["status"] == "revoked" and revoked["revoked"] is not None
    assert revoked == ok_json(admin.http.get(f"/eab/{minted['kid']}"))
    event = ok_json(admin.http.get("/audit", params={"limit": 1}))[0]
    assert (event["action"], event["target"]) == ("eab.revoke", minted["kid"])
    assert (event["actor"], event["source"]) == ("token:api-admin", "127.0.0.1")
    assert acmefleet.count("eab_credentials", kid=minted["kid"], hmac_key=None) == 1
    before = acmefleet.snapshot()
    assert error_body(admin.http.post(f"/eab/{minted['kid']}/revoke"), 409)["error"] == "conflict"
    bound_refused = admin.http.post(f"/eab/{world.bound_kid}/revoke")
    assert "bound" in error_body(bound_refused, 409)["detail"]
    assert acmefleet.snapshot() == before

    # A revoked credential no longer registers an account.
    with AcmeClient(acmefleet.directory("public"), acmefleet.ca_bundle) as acme:
        response = acme.new_account((minted["kid"], minted["hmac_key"]))
        assert response.status_code >= 400 and acme.kid is None, response.text


# ------------------------------------------------------------------ accounts and certificates


def test_accounts(acmefleet: AcmefleetServer, admin: ConsoleApi, world: World) -> None:
    listed = {a["id"]: a for a in ok_json(admin.http.get("/accounts"))}
    account = listed[world.account_id]
    assert account == ok_json(admin.http.get(f"/accounts/{world.account_id}"))
    assert account["org_id"] == world.org_id and account["endpoint"] == "private"
    assert account["eab_kid"] == world.bound_kid and account["status"] == "valid"
    assert account["contact"] == ["mailto:t@example.com"]
    assert len(account["key_thumbprint"]) == 43

    org = admin.create_org("account-co")
    admin.add_domain(org["id"], "account-co.example.com")
    with acme_account(acmefleet, admin.mint(org["id"], "private")) as acme:
        url = f"/accounts/{account_id(acme)}"
        deactivated = ok_json(admin.http.post(f"{url}/deactivate"))
        assert deactivated["status"] == "deactivated"
        assert ok_json(admin.http.get(url)) == deactivated
        assert error_body(admin.http.post(f"{url}/deactivate"), 409)["error"] == "conflict"
        refused = acme.new_order(["x.account-co.example.com"])
        assert problem_type(refused) == ERR + "unauthorized"
    event = ok_json(admin.http.get("/audit", params={"limit": 1}))[0]
    assert event["action"] == "account.deactivate" and event["target"] == deactivated["id"]


@dataclass(frozen=True)
class Issued:
    name: str
    org_id: int
    endpoint: str
    chain: str


@pytest.fixture(scope="module")
def issued(acmefleet: AcmefleetServer, admin: ConsoleApi) -> list[Issued]:
    """Three certificates: two organisations, both endpoints (public one pre-validated)."""
    one = admin.create_org("cert-one")
    two = admin.create_org("cert-two")
    admin.add_domain(one["id"], "cert-one.example.com")
    public_domain = admin.add_domain(one["id"], "cert-one.example.org")
    admin.validate_manually(public_domain["id"], scope="subdomains")
    admin.add_domain(two["id"], "cert-two.example.com")
    made = []
    for org, endpoint, name in (
        (one, "private", "inventory.cert-one.example.com"),
        (one, "public", "inventory.cert-one.example.org"),
        (two, "private", "inventory.cert-two.example.com"),
    ):
        with acme_account(acmefleet, admin.mint(org["id"], endpoint)) as acme:
            made.append(Issued(name, org["id"], endpoint, acme.issue_certificate([name])))
    return made


def _certs(admin: ConsoleApi, **params: Any) -> set[str]:
    mine = {"inventory.cert-one.example.com", "inventory.cert-one.example.org"}
    mine.add("inventory.cert-two.example.com")
    found = ok_json(admin.http.get("/certificates", params=params))
    return {n for c in found for n in c["names"] if n in mine}


def test_certificates_list_and_filters(admin: ConsoleApi, issued: list[Issued]) -> None:
    everything = {i.name for i in issued}
    assert _certs(admin) == everything
    one, _public, two = issued
    assert _certs(admin, org_id=one.org_id) == {i.name for i in issued if i.org_id == one.org_id}
    assert _certs(admin, org_id=two.org_id) == {two.name}
    assert _certs(admin, endpoint="public") == {"inventory.cert-one.example.org"}
    assert _certs(admin, endpoint="private") == everything - {"inventory.cert-one.example.org"}
    assert _certs(admin, endpoint="nowhere") == set()
    assert _certs(admin, name="CERT-ONE") == {i.name for i in issued if i.org_id == one.org_id}
    assert _certs(admin, name="inventory.cert-two") == {two.name}
    assert _certs(admin, expiring_within_days=89) == set()  # both profiles last 90 days
    assert _certs(admin, expiring_within_days=91) == everything
    assert _certs(admin, revoked="false") == everything
    assert _certs(admin, revoked="true") == set()
    assert _certs(admin, org_id=one.org_id, endpoint="private") == {one.name}
    for bad in (
        {"org_id": 0},
        {"org_id": "x"},
        {"org_id": TOO_BIG_ID},  # overflowed the SQLite driver: a 500
        {"expiring_within_days": -1},
        {"expiring_within_days": 3651},
        {"revoked": "maybe"},
        {"endpoint": "x" * 65},
    ):
        assert error_body(admin.http.get("/certificates", params=bad), 422)


def test_certificate_show_download_and_revoke(
    acmefleet: AcmefleetServer, admin: ConsoleApi, auditor: ConsoleApi, issued: list[Issued]
) -> None:
    target = issued[2]
    [cert] = ok_json(admin.http.get("/certificates", params={"name": target.name}))
    leaf = x509.load_pem_x509_certificate(target.chain.encode())
    assert cert["serial"] == format(leaf.serial_number, "x")
    assert cert["names"] == [target.name] and cert["org_id"] == target.org_id
    assert (cert["endpoint"], cert["ca"], cert["profile"]) == (
        "private",
        "private",
        "private-server",
    )
    assert cert["days_left"] in (89, 90) and cert["revoked"] is None
    assert ok_json(auditor.http.get(f"/certificates/{cert['id']}")) == cert

    pem = auditor.http.get(f"/certificates/{cert['id']}/pem")
    assert pem.status_code == 200
    assert pem.headers["content-type"].startswith("application/pem-certificate-chain")
    assert pem.text == target.chain

    revoked = ok_json(admin.http.post(f"/certificates/{cert['id']}/revoke", json={"reason": 4}))
    assert revoked["revoked"] is not None and revoked["revocation_reason"] == 4
    assert _certs(admin, revoked="true") == {target.name}
    again = admin.http.post(f"/certificates/{cert['id']}/revoke", json={"reason": 4})
    assert error_body(again, 409)["error"] == "conflict"
    entry = fetch_crl(acmefleet.pki_port, "private").get_revoked_certificate_by_serial_number(
        leaf.serial_number
    )
    assert entry is not None
    event = ok_json(admin.http.get("/audit", params={"limit": 1}))[0]
    assert (event["action"], event["target"]) == ("certificate.revoke", cert["serial"])
    assert event["details"] == {"reason": 4}


# ------------------------------------------------------------------ audit and secrets


def test_audit_log(admin: ConsoleApi, auditor: ConsoleApi) -> None:
    events = ok_json(auditor.http.get("/audit"))
    assert 1 <= len(events) <= 100
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    assert set(events[0]) == {"id", "at", "actor", "action", "target", "source", "details"}
    assert len(ok_json(auditor.http.get("/audit", params={"limit": 2}))) == 2
    everything = ok_json(auditor.http.get("/audit", params={"limit": 1000}))
    assert {"token.create", "org.create", "eab.mint", "domain.add"} <= {
        e["action"] for e in everything
    }
    for bad in (0, 1001, -1, "ten"):
        assert error_body(auditor.http.get("/audit", params={"limit": bad}), 422)
    # Issuance is audited too, and the whole chain verifies for any token role.
    assert "certificate.issue" in {e["action"] for e in everything}
    chain = ok_json(auditor.http.get("/audit/verify"))
    assert chain["intact"] is True and chain["problems"] == []
    assert chain["events"] >= len(everything) and len(chain["head_hash"]) == 64


def test_console_writes_do_not_stall_acme_requests(
    acmefleet: AcmefleetServer, admin: ConsoleApi, world: World
) -> None:
    """Console writes and signed ACME requests on the same worker (the module's server has
    one). The console's write transaction used to be a ``yield`` dependency: FastAPI runs its
    start (BEGIN IMMEDIATE), the route and its end (COMMIT) as three thread-pool calls
    scheduled from the event loop, so SQLite's write lock was held across turns of the loop.
    An ACME request, which writes synchronously on that loop, then waited for the lock and
    kept the loop from scheduling the commit until the busy timeout: ACME requests took 10 s
    and more and failed with 500 ("database is locked"), the console's took as long."""
    body = {"org_id": world.org_id, "endpoint": "private"}
    failures: list[str] = []

    def mint_many() -> None:
        for _ in range(20):
            minted = admin.http.post("/eab", json=body)
            if minted.status_code != 201:
                failures.append(f"console {minted.status_code}: {minted.text[:200]}")
                return
            acmefleet.minted_secrets.append(minted.json()["hmac_key"])

    with acme_account(acmefleet, admin.mint(world.org_id, "private")) as acme:
        console = threading.Thread(target=mint_many)
        console.start()
        for n in range(20):
            created = acme.new_order([f"busy{n}.world.example.com"])
            if created.status_code != 201:
                failures.append(f"ACME {created.status_code}: {created.text[:200]}")
                break
        console.join(timeout=120)
    assert not console.is_alive()
    assert failures == []
    assert "database is locked" not in acmefleet.log_text()


def test_secrets_never_leave_the_mint_response(
    acmefleet: AcmefleetServer, admin: ConsoleApi, auditor: ConsoleApi, world: World
) -> None:
    """HMAC keys: only in the mint response. Tokens: nowhere (API, audit table, log)."""
    minted = admin.mint(world.org_id, "private")
    assert minted["hmac_key"] and len(minted["hmac_key"]) >= 43
    with acme_account(acmefleet, admin.mint(world.org_id, "private")):
        pass  # one more bound (spent) credential
    secrets = list(acmefleet.minted_secrets)
    assert minted["hmac_key"] in secrets and len(secrets) >= 5

    token_secrets = [t.rsplit("_", 1)[1] for t in ISSUED_TOKENS]
    forbidden = secrets + ISSUED_TOKENS + token_secrets
    pages = []
    for client in (admin.http, auditor.http):
        for route in READS:
            response = client.get(route.url(world))
            assert response.status_code == 200
            pages.append(response.text)
        pages.append(client.get(f"/eab/{minted['kid']}").text)
        pages.append(client.get("/audit", params={"limit": 1000}).text)
    for page in pages:
        assert "hmac_key" not in page
        for secret in forbidden:
            assert secret not in page

    with acmefleet.db() as db, db.read() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM audit_events").all()
        tokens = conn.exec_driver_sql("SELECT * FROM admin_tokens").all()
    audit_text = "\n".join(repr(tuple(row)) for row in rows)
    assert "eab.mint" in audit_text and "token.create" in audit_text
    for secret in forbidden:
        assert secret not in audit_text
    assert all(secret not in repr(tuple(row)) for row in tokens for secret in token_secrets)

    log = acmefleet.log_text()
    assert log, "the server log is empty"
    for secret in forbidden:
        assert secret not in log
