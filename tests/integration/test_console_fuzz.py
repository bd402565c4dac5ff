"""The console API's OpenAPI document, and schemathesis against the live server over HTTPS.

The document must be valid OpenAPI. Then every operation is fuzzed (schemathesis 4: the
examples, coverage and fuzzing phases; positive and negative data) with an admin token
and, more briefly, an auditor token: no response may be a 5xx, every error must be the
API's JSON error document, and the auditor run must not change a single stored row.
The server starts with real objects (organisations, domains, a delegation, EAB credentials,
accounts, certificates) so that small generated ids often hit them.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.checks import CheckFunction, not_a_server_error

from acmefleet.console.api.app import build_api
from acmefleet.console.context import ConsoleContext
from acmefleet.console.domain_checks import expected_content
from tests.support.acmefleet_server import AcmefleetServer
from tests.support.console import (
    API_PREFIX,
    ConsoleApi,
    account_id,
    acme_account,
    api_client,
    create_token,
    ok_json,
)

pytestmark = pytest.mark.integration
ApiCase = schemathesis.Case[Any]

ADMIN_EXAMPLES = 25  # per operation (hypothesis's fuzzing phase); plus examples and coverage
AUDITOR_EXAMPLES = 5
FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,  # no .hypothesis/ directory in the tree; each run starts fresh
    "suppress_health_check": list(HealthCheck),
    "print_blob": True,
}


@pytest.fixture(scope="module")
def tokens(acmefleet: AcmefleetServer) -> dict[str, str]:
    return {role: create_token(acmefleet, role, f"fuzz-{role}") for role in ("admin", "auditor")}


# Ids of real objects, filled in by ``seeded``: the hooks below mix them into generated
# path parameters and bodies, so the fuzzer gets past "not found" into the handlers.
KNOWN: dict[str, list[Any]] = defaultdict(list)


@pytest.fixture(scope="module")
def seeded(acmefleet: AcmefleetServer, tokens: dict[str, str]) -> None:
    """Real objects: organisations, domains, delegations, credentials, accounts, certificates."""
    KNOWN.clear()
    KNOWN["endpoint"] += ["private", "public"]
    with ConsoleApi(acmefleet, tokens["admin"]) as api:
        for n in range(3):
            org = api.create_org(f"fuzz-org-{n}")
            domain = api.add_domain(org["id"], f"fuzz{n}.example.com")
            network = api.add_domain(org["id"], f"10.{n}.0.0/16")
            public = api.add_domain(org["id"], f"fuzz{n}.example.org")
            api.validate_manually(public["id"], scope="subdomains")
            KNOWN["org_id"].append(org["id"])
            KNOWN["domain_id"] += [domain["id"], network["id"], public["id"]]
            for endpoint in ("private", "public"):
                minted = api.mint(org["id"], endpoint)
                with acme_account(acmefleet, minted) as acme:
                    suffix = "com" if endpoint == "private" else "org"
                    acme.issue_certificate([f"www.fuzz{n}.example.{suffix}"])
                    KNOWN["account_id"].append(account_id(acme))
                KNOWN["kid"].append(minted["kid"])
            doomed = api.add_domain(org["id"], f"doomed{n}.example.com")
            KNOWN["doomed_domain_id"].append(doomed["id"])  # for DELETE /domains/{id} only
            unused = api.mint(org["id"], "private")["kid"]
            KNOWN["kid"].append(unused)
            KNOWN["delegation_id"].append(api.delegate(domain["id"], eab_kid=unused)["id"])
        KNOWN["cert_id"] += [c["id"] for c in ok_json(api.http.get("/certificates"))]


class _AlwaysRight(BaseHTTPRequestHandler):
    """Answers any console domain check with the content it expects."""

    def do_GET(self) -> None:
        body = expected_content(self.path.rsplit("/", 1)[-1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def domain_web_server(acmefleet: AcmefleetServer) -> Iterator[None]:
    """So that ``validation/check`` after a fuzzed ``http-01`` start can succeed too."""
    server = ThreadingHTTPServer(("127.0.0.1", acmefleet.http01_port), _AlwaysRight)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _document() -> dict[str, Any]:
    """The OpenAPI document as the application builds it (no server needed to collect)."""
    return build_api(cast("ConsoleContext", None)).openapi()


# schemathesis 4.32's fixture-based loader (``schemathesis.pytest.from_fixture``) breaks
# on pytest 9.2 (it sets ``request.node._nodeid``, which pytest no longer has), so the
# schema is loaded at import time from the application itself, one pytest item per
# operation; ``test_live_document_is_the_one_fuzzed`` checks the server serves exactly it,
# and every case is sent to the live server (``case.call(base_url=...)``) over HTTPS.
schema = schemathesis.openapi.from_dict(_document())


def _sometimes_known(name: str, generated: Any) -> st.SearchStrategy[Any]:
    if not KNOWN.get(name):
        return st.just(generated)
    return st.one_of(st.just(generated), st.sampled_from(KNOWN[name]))


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """Each path parameter: as generated, or the id of a real object.

    Removing a domain gets domains of its own: the others must outlive it for the
    operations after it (validation, delegations...) to find them.
    """
    if not path_parameters:
        return st.just(path_parameters)
    operation = context.operation
    doomed = operation is not None and (operation.method.upper(), operation.path) == (
        "DELETE",
        f"{API_PREFIX}/domains/{{domain_id}}",
    )
    return st.fixed_dictionaries(
        {
            name: _sometimes_known(f"doomed_{name}" if doomed else name, value)
            for name, value in path_parameters.items()
        }
    )


BODY_FIELDS = {"org_id": "org_id", "endpoint": "endpoint", "account_id": "account_id"}
BODY_FIELDS["eab_kid"] = "kid"


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Object bodies: fields naming an object (org_id, endpoint...) sometimes name a real one."""
    if not isinstance(body, dict):
        return st.just(body)
    fields = {k: _sometimes_known(BODY_FIELDS[k], v) for k, v in body.items() if k in BODY_FIELDS}
    return st.fixed_dictionaries(fields).map(lambda chosen: {**body, **chosen})


def errors_are_json(ctx: Any, response: schemathesis.Response, case: ApiCase) -> None:
    """Every 4xx/5xx is ``{"error": code, "detail": ...}`` as application/json."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (response.status_code, content_type)
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "detail"}, body


CHECKS: list[CheckFunction] = [not_a_server_error, errors_are_json]
# (role, "METHOD /path") -> status code -> how many responses; checked and printed at the end.
SEEN: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)


def _call(
    case: ApiCase, server: AcmefleetServer, tokens: dict[str, str], role: str
) -> schemathesis.Response:
    token = tokens[role]
    response = case.call(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {token}"},
        verify=str(server.ca_bundle),  # requests takes the CA bundle as a path
        timeout=30,
    )
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    SEEN[role, operation][response.status_code] += 1  # case.method may be a probe (TRACE...)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code < 500, case.as_curl_command()
    return response


# ------------------------------------------------------------------ the document


@pytest.fixture(scope="module")
def live_document(acmefleet: AcmefleetServer) -> dict[str, Any]:
    with api_client(acmefleet) as client:  # no token: the document is public
        return dict(ok_json(client.get("/openapi.json")))


def test_live_document_is_the_one_fuzzed(live_document: dict[str, Any]) -> None:
    assert live_document == _document()


def test_openapi_document_is_valid(live_document: dict[str, Any]) -> None:
    document = live_document
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"].startswith("3.1")
    operations = [(m, p) for p, ops in document["paths"].items() for m in ops]
    assert len(operations) == 31
    assert all(p.startswith(API_PREFIX) for _m, p in operations)


# ------------------------------------------------------------------ fuzzing


@schema.parametrize()
@settings(max_examples=ADMIN_EXAMPLES, **FUZZ_SETTINGS)
def test_admin_fuzz_never_a_server_error(
    case: ApiCase,
    acmefleet: AcmefleetServer,
    tokens: dict[str, str],
    seeded: None,
    domain_web_server: None,
) -> None:
    _call(case, acmefleet, tokens, "admin")


@pytest.fixture(scope="module")
def before_auditor(acmefleet: AcmefleetServer, seeded: None) -> Iterator[Any]:
    """The stored rows before the auditor fuzz run; compared after it."""
    snapshot = acmefleet.snapshot()
    yield snapshot


@schema.parametrize()
@settings(max_examples=AUDITOR_EXAMPLES, **FUZZ_SETTINGS)
def test_auditor_fuzz_reads_only(
    case: ApiCase,
    acmefleet: AcmefleetServer,
    tokens: dict[str, str],
    before_auditor: Any,
) -> None:
    response = _call(case, acmefleet, tokens, "auditor")
    if case.operation.method.upper() != "GET":
        assert response.status_code in (403, 404, 405, 413, 422, 400), response.status_code


def test_auditor_fuzz_changed_nothing(acmefleet: AcmefleetServer, before_auditor: Any) -> None:
    assert acmefleet.snapshot() == before_auditor


def test_every_operation_was_fuzzed(live_document: dict[str, Any]) -> None:
    operations = {
        f"{method.upper()} {path}"
        for path, items in live_document["paths"].items()
        for method in items
    }
    for role in ("admin", "auditor"):
        assert {op for r, op in SEEN if r == role} == operations, role
    for (role, operation), statuses in sorted(SEEN.items()):
        print(
            f"{role:8} {operation:58} {sum(statuses.values()):4}  {dict(sorted(statuses.items()))}"
        )
    total = sum(sum(c.values()) for c in SEEN.values())
    print(f"{total} requests")
    assert not any(code >= 500 for statuses in SEEN.values() for code in statuses)
    # Beyond validation: most operations also answered with success to the admin.
    succeeded = [
        op for (role, op), c in SEEN.items() if role == "admin" and any(200 <= x < 300 for x in c)
    ]
    assert len(succeeded) >= 20, sorted({op for r, op in SEEN if r == "admin"} - set(succeeded))


def test_server_logged_no_error(acmefleet: AcmefleetServer) -> None:
    log = acmefleet.log_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-4000:]
