"""The web console in a real browser: headless Chromium (Playwright) against a real server.

Screenshots land in ``artifacts/screenshots/`` (git-ignored). The tests run in file order and
share one server: later ones (certificates, dashboard) build on what earlier ones created.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import APIResponse, Browser, Locator, Page, Response

from acmefleet.clock import SystemClock
from acmefleet.console import tokens
from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import AcmefleetServer, running_acmefleet
from tests.support.browser import Session, browser_session, chromium, spki_sha256

pytestmark = pytest.mark.integration

ORG = "Example Shop"
DOMAIN = "shop.example.net"
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
}
PAGES = ["/console/", "/console/orgs", "/console/eab", "/console/accounts",
         "/console/certificates", "/console/audit"]  # fmt: skip
# A third endpoint whose certificates live 20 days: they show up as "expiring".
SHORT_ENDPOINT = """
[[endpoints]]
name = "short"
type = "private"
ca = "private"
profiles = ["short-server"]

[profiles.short-server]
kind = "private-server"
validity_days = 20
description = "20-day server certificates"
"""


def make_token(server: AcmefleetServer, name: str, role: str) -> str:
    """``server init`` prints the first admin token but the harness does not keep it."""
    with server.db() as database, database.write() as conn:
        secret, _ = tokens.create(conn, name=name, role=role, actor="test", now=SystemClock().now())
    return secret


class Secrets:
    """Every secret the tests handle: none may appear in a URL, a cookie or the server log."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: str) -> str:
        self.values.append(value)
        return value


@pytest.fixture(scope="module")
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, secrets: Secrets) -> Iterator[AcmefleetServer]:
    with running_acmefleet(
        tmp_path_factory.mktemp("console-web"), extra_config=SHORT_ENDPOINT
    ) as running:
        yield running
        log = running.log_text()
    assert "Traceback" not in log, f"the server logged an unhandled error:\n{log[-4000:]}"
    leaked = [s for s in secrets.values + running.minted_secrets if s in log]
    assert not leaked, "a token or an EAB HMAC key appeared in the server log"


@pytest.fixture(scope="module")
def admin_token(server: AcmefleetServer, secrets: Secrets) -> str:
    return secrets.add(make_token(server, "web-admin", "admin"))


@pytest.fixture(scope="module")
def auditor_token(server: AcmefleetServer, secrets: Secrets) -> str:
    return secrets.add(make_token(server, "web-auditor", "auditor"))


@pytest.fixture(scope="module")
def browser(server: AcmefleetServer) -> Iterator[Browser]:
    # Chromium must start: a launch failure fails the tests with its own error, never a skip.
    with chromium(spki_sha256("127.0.0.1", server.port), server.ca_bundle) as launched:
        yield launched


@pytest.fixture
def anonymous(browser: Browser, server: AcmefleetServer, secrets: Secrets) -> Iterator[Session]:
    with browser_session(browser, server.base_url) as session:
        yield session
        assert_clean(session, secrets)


@pytest.fixture
def admin(anonymous: Session, admin_token: str) -> Session:
    login(anonymous, admin_token)
    return anonymous


@pytest.fixture
def auditor(
    browser: Browser, server: AcmefleetServer, auditor_token: str, secrets: Secrets
) -> Iterator[Session]:
    with browser_session(browser, server.base_url) as session:
        login(session, auditor_token)
        yield session
        assert_clean(session, secrets)


def assert_clean(session: Session, secrets: Secrets) -> None:
    """No secret in any URL the browser requested; no console error (CSP violations are)."""
    for url in session.requested:
        assert not any(s in url for s in secrets.values), f"a secret in a URL: {url}"
    # Chromium logs the 4xx pages the tests provoke on purpose; anything else is a fault.
    unexpected = [e for e in session.console_errors if "status of 4" not in e]
    assert not unexpected, unexpected


def login(session: Session, token: str) -> None:
    session.goto("/console/login")
    session.page.get_by_label("API token").fill(token)
    with session.page.expect_navigation() as navigation:
        session.page.get_by_role("button", name="Sign in").click()
    assert navigation.value is not None and navigation.value.ok
    assert session.page.url == session.base_url + "/console/"
    assert token not in session.page.content()


def submit(page: Page, button: Locator) -> Response:
    """Click a form's button and return the response of the page it leads to."""
    with page.expect_navigation() as navigation:
        button.click()
    response = navigation.value
    assert response is not None
    return response


def domain_card(page: Page, name: str) -> Locator:
    heading = page.get_by_role("heading", name=name, exact=True)
    return page.locator("section.domain", has=heading)


def forge(session: Session, path: str, form: dict[str, str]) -> APIResponse:
    """A POST outside the page's forms, with the context's cookies (the session, if any)."""
    fields: dict[str, str | float | bool] = dict(form)
    return session.context.request.post(session.base_url + path, form=fields, max_redirects=0)


def audit_rows(server: AcmefleetServer, action: str) -> list[Any]:
    with server.db() as database, database.read() as conn:
        return list(
            conn.exec_driver_sql(
                "SELECT actor, target, source, details FROM audit_events WHERE action = ? "
                "ORDER BY id",
                (action,),
            )
        )


class ChallengeServer:
    """The domain's web server for the console's http-01 check (loopback, the check port)."""

    def __init__(self, port: int) -> None:
        self.answers: dict[str, str] = {}
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = answers.get(self.path)
                self.send_response(200 if body else 404)
                self.end_headers()
                if body:
                    self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- signing in and out


def test_logged_out_pages_redirect_to_login(anonymous: Session, server: AcmefleetServer) -> None:
    for path in [*PAGES, "/console/orgs/1", "/console"]:
        response = anonymous.goto(path)
        assert anonymous.page.url == server.base_url + "/console/login", path
        assert response.status == 200
    assert anonymous.page.get_by_label("API token").get_attribute("type") == "password"
    anonymous.screenshot("login")
    before = server.snapshot()
    forged = forge(anonymous, "/console/orgs", {"name": "forged", "csrf_token": "x"})
    assert forged.status == 303 and forged.headers["location"] == "/console/login"
    assert server.snapshot() == before


def test_wrong_token_is_refused(anonymous: Session, server: AcmefleetServer) -> None:
    anonymous.goto("/console/login")
    anonymous.page.get_by_label("API token").fill("acmefleet_0000000000000000_nope")
    response = submit(anonymous.page, anonymous.page.get_by_role("button", name="Sign in"))
    assert response.status == 403
    assert "unknown or revoked" in anonymous.page.get_by_role("alert").inner_text()
    assert anonymous.context.cookies() == []
    assert "nope" not in anonymous.page.content(), "the presented token is not echoed"


def test_login_cookie_headers_and_logout(
    anonymous: Session, server: AcmefleetServer, admin_token: str
) -> None:
    sessions_before = server.count("console_sessions")
    login(anonymous, admin_token)
    assert server.count("console_sessions") == sessions_before + 1
    [cookie] = anonymous.context.cookies()
    assert cookie["name"] == "acmefleet_session"
    assert cookie["httpOnly"] and cookie["secure"]
    assert cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert admin_token not in cookie["value"]
    for path in ["/console/", "/console/static/console.css", "/console/no-such-page"]:
        response = anonymous.context.request.get(server.base_url + path, max_redirects=0)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
    redirect = anonymous.context.request.get(server.base_url + "/console/login", max_redirects=0)
    assert redirect.status == 303 and redirect.headers["x-frame-options"] == "DENY"

    submit(anonymous.page, anonymous.page.get_by_role("button", name="Sign out"))
    assert anonymous.page.url == server.base_url + "/console/login"
    assert anonymous.context.cookies() == []
    assert server.count("console_sessions") == sessions_before
    anonymous.context.add_cookies([cookie])  # type: ignore[list-item]
    anonymous.goto("/console/")
    assert anonymous.page.url == server.base_url + "/console/login", "the old session is closed"


# -- organisations and domains


def test_organisation_domain_and_manual_validation(admin: Session, server: AcmefleetServer) -> None:
    page = admin.page
    admin.goto("/console/orgs")
    page.get_by_label("Name").fill(ORG)
    submit(page, page.get_by_role("button", name="Create"))
    assert page.get_by_role("heading", level=1).inner_text().startswith(ORG)
    page.get_by_label("Domain or IP network").fill(DOMAIN)
    submit(page, page.get_by_role("button", name="Add domain"))
    card = domain_card(page, DOMAIN)
    assert "Not validated." in card.inner_text()

    card.get_by_text("Validate manually…").click()
    card.get_by_label("Justification").fill("ticket OPS-1234: registrar record checked")
    scope = card.get_by_label("Covers on public endpoints")
    assert scope.input_value() == "exact", "the narrow scope unless asked"
    scope.select_option("subdomains")
    admin.screenshot("domain-validate-form")
    submit(page, card.get_by_role("button", name="Mark validated"))
    card = domain_card(page, DOMAIN)
    assert card.locator(".badge").first.inner_text() == "validated"
    state = card.locator(".domain-state").inner_text()
    assert "Validated until" in state and "token:web-admin" in state and "manual" in state
    assert f"Covers {DOMAIN}, its subdomains and wildcards" in state
    [row] = [r for r in audit_rows(server, "domain.validate") if r.target == DOMAIN]
    assert row.actor == "token:web-admin" and row.source == "127.0.0.1"
    assert "OPS-1234" in row.details and '"scope":"subdomains"' in row.details
    admin.screenshot("organisation")


def test_http01_check_and_other_domain_actions(admin: Session, server: AcmefleetServer) -> None:
    page = admin.page
    admin.goto("/console/orgs")
    submit(page, page.get_by_role("link", name=ORG))
    name = f"web.{DOMAIN}"
    page.get_by_label("Domain or IP network").fill(name)
    submit(page, page.get_by_role("button", name="Add domain"))
    submit(page, domain_card(page, name).get_by_role("button", name="Start http-01 check"))
    card = domain_card(page, name)
    facts = card.locator(".pending dd")
    url, token, content = (facts.nth(i).inner_text() for i in range(3))
    assert url == f"http://{name}:{server.http01_port}/.well-known/acme-challenge/{token}"
    assert content == f"{token}.acmefleet-domain-validation"
    admin.screenshot("http01-pending")

    failed = submit(page, card.get_by_role("button", name="Check now"))
    assert failed.status == 400, "nothing serves the token yet"
    assert f"validation of {name} failed" in page.get_by_role("alert").inner_text()
    submit(page, page.get_by_role("link", name="← Back"))  # to the organisation page
    card = domain_card(page, name)
    web = ChallengeServer(server.http01_port)
    try:
        web.answers[f"/.well-known/acme-challenge/{token}"] = content
        submit(page, card.get_by_role("button", name="Check now"))
    finally:
        web.close()
    card = domain_card(page, name)
    assert "Validated until" in card.inner_text() and "http-01" in card.inner_text()
    assert f"Covers {name} only" in card.locator(".domain-state").inner_text()
    assert card.locator(".pending").count() == 0

    submit(page, card.get_by_role("button", name="Remove validation"))
    assert "Not validated." in domain_card(page, name).inner_text()
    card = domain_card(page, name)
    card.get_by_text("Remove domain…").click()
    submit(page, card.get_by_role("button", name=f"Remove {name}"))
    assert domain_card(page, name).count() == 0

    submit(page, page.get_by_role("button", name="Disable organisation"))
    assert "disabled" in page.get_by_role("heading", level=1).inner_text()
    admin.goto("/console/eab")
    assert page.locator("option", has_text=ORG).count() == 0, "no minting for a disabled org"
    admin.goto("/console/orgs")
    submit(page, page.get_by_role("link", name=ORG))
    submit(page, page.get_by_role("button", name="Enable organisation"))
    assert "active" in page.get_by_role("heading", level=1).inner_text()


def test_service_errors_are_messages_not_500s(admin: Session, server: AcmefleetServer) -> None:
    page = admin.page
    admin.goto("/console/orgs")
    submit(page, page.get_by_role("link", name=ORG))
    org_path = page.url.removeprefix(server.base_url)
    page.get_by_label("Domain or IP network").fill(DOMAIN)
    response = submit(page, page.get_by_role("button", name="Add domain"))
    assert response.status == 409
    assert "already in this organisation" in page.get_by_role("alert").inner_text()
    assert page.get_by_role("link", name="← Back").get_attribute("href") == org_path

    admin.goto(org_path)
    page.get_by_label("Domain or IP network").fill("*.wild.example.net")
    assert submit(page, page.get_by_role("button", name="Add domain")).status == 400
    assert "add the domain itself" in page.get_by_role("alert").inner_text()

    admin.goto(org_path)
    csrf = admin.csrf()
    domain_id = domain_card(page, DOMAIN).get_attribute("id")
    assert domain_id is not None
    short = forge(
        admin,
        f"{org_path}/domains/{domain_id.removeprefix('domain-')}/validate",
        {"csrf_token": csrf, "justification": "no"},
    )
    assert short.status == 400 and "justification" in short.text()
    assert admin.goto("/console/orgs/9999").status == 404
    assert admin.goto("/console/orgs/abc").status == 422
    assert admin.goto("/console/certificates?state=bogus").status == 422
    assert forge(admin, "/console/eab/unknown-kid/revoke", {"csrf_token": csrf}).status == 404


def test_ids_beyond_a_row_id_are_404_not_500(admin: Session, server: AcmefleetServer) -> None:
    """Path ids that no 64-bit row id can be overflowed the SQLite driver (a 500)."""
    huge = "99999999999999999999"
    before = server.snapshot()
    for path in (f"/console/orgs/{huge}", f"/console/orgs/{2**63}", "/console/orgs/0"):
        response = admin.goto(path)
        assert response.status == 404, (path, response.status)
        assert "There is no such page." in admin.page.get_by_role("alert").inner_text()
    admin.goto("/console/orgs")
    csrf = admin.csrf()
    form = {"csrf_token": csrf, "justification": "checked by tests"}
    for path in (
        f"/console/orgs/{huge}/disable",
        f"/console/orgs/{huge}/domains",
        f"/console/orgs/1/domains/{huge}/validate",
        f"/console/orgs/1/domains/{huge}/remove",
        f"/console/orgs/{huge}/domains/1/unvalidate",
    ):
        assert forge(admin, path, {**form, "name": "x.example.net"}).status == 404, path
    minted = forge(admin, "/console/eab", {"csrf_token": csrf, "org_id": huge, "endpoint": "x"})
    assert minted.status == 422
    assert admin.goto(f"/console/eab?org={huge}").status == 422
    assert admin.goto("/console/orgs/abc").status == 422  # not a number: the form of the path
    assert server.snapshot() == before


# -- CSRF and roles


def test_posts_without_the_right_csrf_token_are_refused(
    admin: Session, auditor: Session, server: AcmefleetServer
) -> None:
    before = server.snapshot()
    assert forge(admin, "/console/orgs", {"name": "no-csrf"}).status == 403
    assert forge(admin, "/console/orgs", {"name": "bad", "csrf_token": "wrong"}).status == 403
    auditor.goto("/console/")
    other = auditor.csrf()  # a real token, of another session
    assert forge(admin, "/console/orgs", {"name": "other", "csrf_token": other}).status == 403
    # The page's own form, its hidden token tampered with in the DOM.
    page = admin.page
    admin.goto("/console/orgs")
    page.locator("form[action='/console/orgs'] input[name=csrf_token]").evaluate(
        "input => { input.value = 'tampered' }"
    )
    page.get_by_label("Name").fill("tampered")
    response = submit(page, page.get_by_role("button", name="Create"))
    assert response.status == 403
    assert "stale" in page.get_by_role("alert").inner_text()
    admin.screenshot("csrf-refused")
    assert server.snapshot() == before


def test_auditor_reads_but_cannot_write(auditor: Session, server: AcmefleetServer) -> None:
    page = auditor.page
    for path in PAGES:
        response = auditor.goto(path)
        assert response.status == 200, path
        assert "read-only" in page.locator(".notice").first.inner_text()
        forms = page.locator("form[method=post]")
        assert forms.count() == 1 and forms.get_attribute("action") == "/console/logout", path
    admin_only = ["Create", "Mint credential", "Deactivate", "Revoke…", "Add domain"]
    for label in admin_only:
        assert page.get_by_text(label, exact=True).count() == 0
    auditor.goto("/console/orgs")
    submit(page, page.get_by_role("link", name=ORG))
    org_path = page.url.removeprefix(server.base_url)
    assert page.locator("form[method=post]").count() == 1
    auditor.screenshot("auditor-organisation")

    csrf = auditor.csrf()  # the auditor's own, valid token: only the role is wrong
    before = server.snapshot()
    with server.db() as database, database.read() as conn:
        org_id = conn.exec_driver_sql("SELECT id FROM organizations WHERE name = ?", (ORG,)).one()
    forged = [
        ("/console/orgs", {"name": "auditor-org"}),
        ("/console/eab", {"org_id": str(org_id.id), "endpoint": "private"}),
        (f"{org_path}/disable", {}),
        (f"{org_path}/domains", {"name": "auditor.example.net"}),
    ]
    for path, form in forged:
        response = forge(auditor, path, {**form, "csrf_token": csrf})
        assert response.status == 403, path
        assert "may only read" in response.text()
    assert server.snapshot() == before


# -- EAB credentials, accounts, certificates


def mint(admin: Session, endpoint: str) -> tuple[str, str, Response]:
    page = admin.page
    admin.goto("/console/eab")
    page.get_by_label("Organisation").select_option(label=ORG)
    page.get_by_label("Endpoint").select_option(endpoint)
    response = submit(page, page.get_by_role("button", name="Mint credential"))
    return page.locator("#eab-kid").inner_text(), page.locator("#eab-hmac").inner_text(), response


def test_mint_shows_the_hmac_key_once(
    admin: Session, server: AcmefleetServer, secrets: Secrets
) -> None:
    page = admin.page
    kid, hmac_key, response = mint(admin, "private")
    secrets.add(hmac_key)
    # Rendered by the POST itself: no redirect could carry the key, no GET can fetch it again.
    assert response.request.method == "POST" and response.status == 201
    assert response.request.redirected_from is None
    assert page.url == server.base_url + "/console/eab"
    commands = page.locator("pre").all_inner_texts()
    assert len(commands) == 2
    assert all(kid in c and hmac_key in c for c in commands)
    assert commands[0].startswith("REQUESTS_CA_BUNDLE=ca-bundle.pem certbot certonly")
    assert f"--eab-hmac-key {hmac_key}" in commands[0] and f"--hmac {hmac_key}" in commands[1]
    assert server.directory("private") in commands[0]
    admin.screenshot("eab-minted")

    for path in [*PAGES, page.url.removeprefix(server.base_url)]:
        admin.goto(path)
        assert hmac_key not in page.content(), path
    admin.goto("/console/eab")
    row = page.locator("tr", has=page.get_by_text(kid, exact=True))
    assert "unused" in row.inner_text()
    storage = page.evaluate("() => JSON.stringify([localStorage, sessionStorage])")
    assert storage == "[{},{}]"
    assert not any(hmac_key in c["value"] for c in admin.context.cookies())
    assert hmac_key not in server.log_text()
    with server.db() as database, database.read() as conn:
        [sessions] = conn.exec_driver_sql("SELECT group_concat(csrf_token) FROM console_sessions")
    assert hmac_key not in (sessions[0] or "")

    # An unused credential can be revoked; then it cannot be revoked again (no button).
    extra_kid, extra_key, _ = mint(admin, "private")
    secrets.add(extra_key)
    admin.goto("/console/eab")
    row = page.locator("tr", has=page.get_by_text(extra_kid, exact=True))
    submit(page, row.get_by_role("button", name="Revoke"))
    row = page.locator("tr", has=page.get_by_text(extra_kid, exact=True))
    assert "revoked" in row.inner_text() and row.get_by_role("button").count() == 0
    admin.screenshot("eab-list")


def issue(server: AcmefleetServer, eab: tuple[str, str], *names: str) -> list[str]:
    with AcmeClient(server.directory("private"), server.ca_bundle) as acme:
        created = acme.new_account(eab, contact=["mailto:hostmaster@shop.example.net"])
        assert created.status_code == 201, created.text
        return [acme.issue_certificate([name]) for name in names]


def test_certificates_issued_over_acme_and_revoked_in_the_console(
    admin: Session, server: AcmefleetServer, secrets: Secrets
) -> None:
    page = admin.page
    kid, hmac_key, _ = mint(admin, "private")
    secrets.add(hmac_key)
    issue(server, (kid, hmac_key), f"www.{DOMAIN}", f"mail.{DOMAIN}")
    short_kid, short_key, _ = mint(admin, "short")
    secrets.add(short_key)
    with AcmeClient(server.directory("short"), server.ca_bundle) as acme:
        assert acme.new_account((short_kid, short_key)).status_code == 201
        acme.issue_certificate([f"api.{DOMAIN}"])

    admin.goto("/console/accounts")
    row = page.locator("tr", has=page.get_by_text(kid, exact=True))
    assert "hostmaster@shop.example.net" in row.inner_text() and "valid" in row.inner_text()
    admin.goto("/console/eab")
    assert "bound" in page.locator("tr", has=page.get_by_text(kid, exact=True)).inner_text()

    admin.goto("/console/certificates")
    rows = page.locator("tbody tr")
    assert rows.count() == 3
    api = page.locator("tr", has=page.get_by_text(f"api.{DOMAIN}", exact=True))
    assert api.locator(".days-soon").count() == 1, api.inner_text()
    www = page.locator("tr", has=page.get_by_text(f"www.{DOMAIN}", exact=True))
    assert www.locator(".days-ok").count() == 1
    pem_link = www.get_by_role("link", name="PEM")
    with page.expect_download() as download:
        pem_link.click()
    pem = Path(download.value.path()).read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")

    mail = page.locator("tr", has=page.get_by_text(f"mail.{DOMAIN}", exact=True))
    cert_id = (mail.get_attribute("id") or "").removeprefix("cert-")
    mail.get_by_text("Revoke…").click()
    mail.get_by_label("Reason").select_option(label="keyCompromise")
    admin.screenshot("certificate-revoke-form")
    submit(page, mail.get_by_role("button", name="Revoke"))
    mail = page.locator("tr", has=page.get_by_text(f"mail.{DOMAIN}", exact=True))
    assert "revoked" in mail.inner_text() and "keyCompromise" in mail.inner_text()
    with server.db() as database, database.read() as conn:
        revoked = conn.exec_driver_sql(
            "SELECT revoked_at, revocation_reason FROM certificates WHERE id = ?", (cert_id,)
        ).one()
    assert revoked.revoked_at is not None and revoked.revocation_reason == 1
    [event] = audit_rows(server, "certificate.revoke")
    assert event.actor == "token:web-admin" and event.source == "127.0.0.1"
    admin.screenshot("certificates")

    page.get_by_label("Name contains").fill("mail")
    submit(page, page.get_by_role("button", name="Filter"))
    assert page.locator("tbody tr").count() == 1
    admin.goto("/console/certificates?expiring=true")
    assert page.locator("tbody tr").all_inner_texts()[0].startswith(f"api.{DOMAIN}")
    assert page.locator("tbody tr").count() == 1
    admin.goto("/console/certificates?state=revoked")
    assert page.locator("tbody tr").count() == 1
    assert f"mail.{DOMAIN}" in page.locator("tbody tr").inner_text()


def test_renewal_windows_pulled_forward_from_the_certificates_page(
    admin: Session, server: AcmefleetServer, secrets: Secrets
) -> None:
    page = admin.page
    kid, hmac_key, _ = mint(admin, "private")
    secrets.add(hmac_key)
    issue(server, (kid, hmac_key), f"renew.{DOMAIN}")
    admin.goto("/console/certificates")
    row = page.locator("tr", has=page.get_by_text(f"renew.{DOMAIN}", exact=True))
    assert "renew " in row.locator(".renewal-window").inner_text()
    page.get_by_text("Pull renewal windows forward…").click()
    form = page.locator("#pull-forward")
    form.get_by_label("Holding the name (exactly)").fill(f"renew.{DOMAIN}")
    form.get_by_label("Reason (audited)").fill("key compromise drill")
    form.get_by_label("Renew within (hours)").fill("2")
    admin.screenshot("certificate-pull-forward-form")
    submit(page, form.get_by_role("button", name="Pull forward"))
    assert "1 certificate to renew" in page.get_by_role("status").inner_text()
    row = page.locator("tr", has=page.get_by_text(f"renew.{DOMAIN}", exact=True))
    assert "key compromise drill" in row.locator(".renewal-window").inner_text()
    [event] = audit_rows(server, "certificate.renewal-pulled-forward")
    assert event.actor == "token:web-admin"
    # Nothing selected: a message, not a 500, and nothing written.
    page.get_by_text("Pull renewal windows forward…").click()
    form = page.locator("#pull-forward")
    form.get_by_label("Reason (audited)").fill("everything")
    refused = submit(page, form.get_by_role("button", name="Pull forward"))
    assert refused.status == 400 and "name the certificates" in page.content()
    assert len(audit_rows(server, "certificate.renewal-pulled-forward")) == 1


def test_deactivate_account(admin: Session, server: AcmefleetServer, secrets: Secrets) -> None:
    page = admin.page
    kid, hmac_key, _ = mint(admin, "private")
    secrets.add(hmac_key)
    with AcmeClient(server.directory("private"), server.ca_bundle) as acme:
        assert acme.new_account((kid, hmac_key)).status_code == 201
    admin.goto("/console/accounts")
    row = page.locator("tr", has=page.get_by_text(kid, exact=True))
    admin.screenshot("accounts")
    submit(page, row.get_by_role("button", name="Deactivate"))
    row = page.locator("tr", has=page.get_by_text(kid, exact=True))
    assert "deactivated" in row.inner_text() and row.get_by_role("button").count() == 0
    assert server.count("accounts", status="deactivated") == 1


def test_dashboard_and_audit_log(admin: Session, server: AcmefleetServer) -> None:
    page = admin.page
    admin.goto("/console/")
    tiles = {
        t.locator(".tile-label").inner_text().lower(): t.locator(".tile-value").inner_text()
        for t in page.locator(".tile").all()
    }
    assert tiles["organisations"] == str(server.count("organizations"))
    assert tiles["domains validated"] == f"1 / {server.count('org_domains')}"
    assert tiles["acme accounts"] == str(server.count("accounts"))
    assert tiles["certificates valid"] == "3 / 4"  # one revoked
    expiring = page.locator("section.card tbody tr")
    assert expiring.count() == 1 and f"api.{DOMAIN}" in expiring.inner_text()
    admin.screenshot("dashboard")

    admin.goto("/console/audit")
    text = page.locator("tbody").inner_text()
    for action in ["org.create", "domain.add", "domain.validate", "eab.mint", "certificate.revoke"]:
        assert action in text
    assert page.locator("tbody tr").count() <= 200
    admin.screenshot("audit")
