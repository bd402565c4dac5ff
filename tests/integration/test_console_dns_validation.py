"""The console's DNS validation (CA/B BR 3.2.2.4.7) against a real authoritative DNS server.

Debian's Knot DNS on loopback is the server's ``validation.dns_resolvers`` (the same ones
dns-01 asks); the administrator's TXT record is placed there by an RFC 2136 update signed with
a TSIG key, as a DNS team's automation would. The console hands out a Random Value (256 bits,
base64url) for ``_acmefleet-challenge.<domain>``, valid 30 days; its check looks the record up
with the server's own dns-01 lookup.

* A DNS validation covers the domain, its subdomains and wildcards: a public order for
  ``*.<domain>`` and ``sub.<domain>`` needs no challenge and is issued (chain and pkilint
  checked). A CNAME from the record into another zone is followed.
* An http-01 validation covers exactly its FQDN: ``sub.`` and ``*.`` of it get challenges.
* A wrong value (an earlier check's), NXDOMAIN, SERVFAIL and an expired Random Value are each
  refused with their own message; the database is left as it was (a failed lookup is audited).
* A DNS validation older than the BR 4.2.1 reuse period in force no longer counts.
* The API, the CLI (remote mode, the real executable) and the web page (headless Chromium)
  show each validation's method, scope and expiry, and the check in progress.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser
from sqlalchemy import update

from acmefleet.baseline import dcv_reuse_period
from acmefleet.store.schema import org_domains
from tests.integration.test_console_web import domain_card, login, make_token, submit
from tests.support.acmefleet_server import ACMEFLEET, AcmefleetServer, checked_acmefleet
from tests.support.browser import browser_session, chromium, spki_sha256
from tests.support.clients import check_issued
from tests.support.console import (
    ConsoleApi,
    Http01Responder,
    acme_account,
    console_api,
    error_body,
    ok_json,
)
from tests.support.knot import BROKEN_ZONE, OTHER_ZONE, ZONE, KnotServer

pytestmark = pytest.mark.integration

LABEL = "_acmefleet-challenge"
REUSE = dcv_reuse_period(datetime.now(UTC))
# The console's record for delegated.example.org points into another zone, whose TXT the
# DNS team's automation updates (a common way to hand out DCV without the main zone's key).
STATIC_RECORDS = [f"{LABEL}.delegated CNAME dcv-delegated.{OTHER_ZONE}."]


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    with KnotServer(tmp_path_factory.mktemp("knot"), STATIC_RECORDS) as server:
        yield server


@pytest.fixture(scope="module")
def acmefleet(
    knot: KnotServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcmefleetServer]:
    settings = {"dns_resolvers": f'["{knot.address}"]', "timeout_seconds": "5"}
    with checked_acmefleet(tmp_path_factory.mktemp("acmefleet"), settings=settings) as server:
        yield server


@pytest.fixture(scope="module")
def admin(acmefleet: AcmefleetServer) -> Iterator[ConsoleApi]:
    with console_api(acmefleet, "admin") as api:
        yield api


@pytest.fixture(scope="module")
def org_id(admin: ConsoleApi) -> int:
    [org] = [o for o in ok_json(admin.http.get("/organizations")) if o["name"] == "acme"]
    return int(org["id"])


def place_txt(knot: KnotServer, name: str, *values: str, zone: str = ZONE) -> None:
    """The DNS team's change: TXT records at ``name`` by RFC 2136 (TSIG-signed)."""
    knot.update(zone, replace={f"{name}.": ("TXT", [f'"{v}"' for v in values])})


def start_dns(admin: ConsoleApi, domain_id: int) -> dict[str, Any]:
    return dict(
        ok_json(admin.http.post(f"/domains/{domain_id}/validation", json={"method": "dns"}))
    )


def check(admin: ConsoleApi, domain_id: int) -> Any:
    return admin.http.post(f"/domains/{domain_id}/validation/check")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def near(text: str, expected: datetime) -> bool:
    return abs(parse_time(text) - expected) < timedelta(minutes=2)


def without_audit(snapshot: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Every business table but the audit log (its rows and its hash chain's head)."""
    audit = ("audit_events", "audit_chain_head")
    return {table: rows for table, rows in snapshot.items() if table not in audit}


def audited(server: AcmefleetServer, action: str, target: str) -> list[dict[str, Any]]:
    with server.db() as database, database.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT details FROM audit_events WHERE action = ? AND target = ? ORDER BY id",
            (action, target),
        )
        return [json.loads(r.details) for r in rows]


# ------------------------------------------------------------------ the DNS method, the API


def test_a_dns_validation_covers_subdomains_and_wildcards(
    acmefleet: AcmefleetServer, admin: ConsoleApi, knot: KnotServer, org_id: int
) -> None:
    domain = admin.add_domain(org_id, f"dnsval.{ZONE}")
    started = start_dns(admin, domain["id"])
    now = datetime.now(UTC)
    record = f"{LABEL}.dnsval.{ZONE}"
    assert started["method"] == "dns" and started["scope"] == "subdomains"
    assert (started["record_name"], started["record_type"]) == (record, "TXT")
    value = started["random_value"]
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert len(raw) * 8 >= 128 and "=" not in value, "a Random Value of 256 bits, base64url"
    assert near(started["expires"], now + timedelta(days=30))
    # Each check gets its own value.
    assert start_dns(admin, domain["id"])["random_value"] != value
    started = start_dns(admin, domain["id"])
    value = started["random_value"]
    shown = ok_json(admin.http.get(f"/domains/{domain['id']}"))
    assert (shown["check_method"], shown["check_expires"]) == ("dns", started["expires"])
    assert shown["validated"] is False

    place_txt(knot, record, value)
    checked = ok_json(check(admin, domain["id"]))
    assert checked["validated"] and checked["validation_method"] == "dns"
    assert checked["validation_scope"] == "subdomains"
    # It holds for the BR 4.2.1 reuse period in force: 200 days from 2026-03-15.
    assert near(checked["validated_until"], datetime.now(UTC) + REUSE)
    assert checked["check_method"] is None and checked["check_expires"] is None
    [done] = audited(acmefleet, "domain.validate", f"dnsval.{ZONE}")
    assert (done["method"], done["scope"]) == ("dns", "subdomains")

    # Public orders under it need no challenge: the wildcard and a name below, issued.
    names = [f"*.dnsval.{ZONE}", f"sub.dnsval.{ZONE}"]
    before = acmefleet.count("challenges")
    with acme_account(acmefleet, admin.mint(org_id, "public")) as acme:
        for name in names:
            created = acme.new_order([name])
            assert created.status_code == 201 and created.json()["status"] == "ready", name
        pem = acme.issue_certificate(names)
    check_issued(acmefleet, pem.encode(), names, level="public")
    assert acmefleet.count("challenges") == before, "no challenge was created"


def test_a_cname_from_the_record_is_followed(
    admin: ConsoleApi, knot: KnotServer, org_id: int
) -> None:
    domain = admin.add_domain(org_id, f"delegated.{ZONE}")
    value = start_dns(admin, domain["id"])["random_value"]
    place_txt(knot, f"dcv-delegated.{OTHER_ZONE}", value, zone=OTHER_ZONE)
    checked = ok_json(check(admin, domain["id"]))
    assert (checked["validation_method"], checked["validation_scope"]) == ("dns", "subdomains")


def test_an_http01_validation_covers_exactly_its_name(
    acmefleet: AcmefleetServer, admin: ConsoleApi, org_id: int
) -> None:
    name = f"httponly.{ZONE}"
    domain = admin.add_domain(org_id, name)
    url = f"/domains/{domain['id']}/validation"
    refused = error_body(admin.http.post(url, json={"method": "http-01", "scope": "subdomains"}))
    assert "'subdomains' needs a dns check" in refused["detail"]
    refused = error_body(admin.http.post(url, json={"method": "dns", "scope": "exact"}))
    assert "scope 'subdomains' only" in refused["detail"]
    started = ok_json(admin.http.post(url, json={"method": "http-01"}))
    assert started["scope"] == "exact" and near(
        started["expires"], datetime.now(UTC) + timedelta(days=7)
    )
    web = Http01Responder(acmefleet.http01_port)
    try:
        web.respond(started["token"], started["expected_content"])
        checked = ok_json(admin.http.post(f"{url}/check"))
    finally:
        web.close()
    assert (checked["validation_method"], checked["validation_scope"]) == ("http-01", "exact")

    with acme_account(acmefleet, admin.mint(org_id, "public")) as acme:
        assert acme.new_order([name]).json()["status"] == "ready"
        for below in (f"sub.{name}", f"*.{name}"):
            created = acme.new_order([below])
            assert created.json()["status"] == "pending", below
            [authz_url] = created.json()["authorizations"]
            authz = acme.get(authz_url).json()
            assert authz["status"] == "pending" and authz["challenges"], below
            if below.startswith("*."):
                assert [c["type"] for c in authz["challenges"]] == ["dns-01"]


# ------------------------------------------------------------------ refusals, nothing changed


def refused_check(acmefleet: AcmefleetServer, admin: ConsoleApi, domain_id: int) -> str:
    """The check's error detail; the database (audit log aside) is as it was."""
    before = acmefleet.snapshot()
    body = error_body(check(admin, domain_id), 400)
    assert without_audit(acmefleet.snapshot()) == without_audit(before)
    shown = ok_json(admin.http.get(f"/domains/{domain_id}"))
    assert shown["validated"] is False and shown["validation_method"] is None
    return str(body["detail"])


def test_a_wrong_value_is_refused(
    acmefleet: AcmefleetServer, admin: ConsoleApi, knot: KnotServer, org_id: int
) -> None:
    """The record still holds an earlier check's value: it proves nothing now."""
    name = f"wrong.{ZONE}"
    domain = admin.add_domain(org_id, name)
    old = start_dns(admin, domain["id"])["random_value"]
    start_dns(admin, domain["id"])
    place_txt(knot, f"{LABEL}.{name}", old)
    detail = refused_check(acmefleet, admin, domain["id"])
    assert detail == (
        f"dns validation of {name} failed: none of the 1 TXT record(s) at "
        f"{LABEL}.{name} holds the expected value"
    )
    [failed] = audited(acmefleet, "domain.validation.fail", name)
    assert failed == {"method": "dns", "problem": "unauthorized"}
    shown = ok_json(admin.http.get(f"/domains/{domain['id']}"))
    assert shown["check_method"] == "dns", "the check stays open to fix the record"


def test_nxdomain_is_refused(acmefleet: AcmefleetServer, admin: ConsoleApi, org_id: int) -> None:
    name = f"nothere.{ZONE}"
    domain = admin.add_domain(org_id, name)
    start_dns(admin, domain["id"])
    detail = refused_check(acmefleet, admin, domain["id"])
    assert detail == (
        f"dns validation of {name} failed: no such DNS name: {LABEL}.{name} (NXDOMAIN)"
    )
    [failed] = audited(acmefleet, "domain.validation.fail", name)
    assert failed["problem"] == "dns"


def test_servfail_is_refused(acmefleet: AcmefleetServer, admin: ConsoleApi, org_id: int) -> None:
    """knotd serves broken.test from a zone file that does not parse: SERVFAIL."""
    domain = admin.add_domain(org_id, BROKEN_ZONE)
    start_dns(admin, domain["id"])
    detail = refused_check(acmefleet, admin, domain["id"])
    assert detail == (
        f"dns validation of {BROKEN_ZONE} failed: the DNS resolvers could not answer for the "
        f"TXT record {LABEL}.{BROKEN_ZONE} (SERVFAIL)"
    )


def test_an_expired_random_value_cannot_complete_a_check(
    acmefleet: AcmefleetServer, admin: ConsoleApi, knot: KnotServer, org_id: int
) -> None:
    name = f"expired.{ZONE}"
    domain = admin.add_domain(org_id, name)
    value = start_dns(admin, domain["id"])["random_value"]
    place_txt(knot, f"{LABEL}.{name}", value)  # the record is right...
    # ...but thirty days have passed since the value was issued (the row time would leave).
    issued = datetime.now(UTC) - timedelta(days=30, seconds=1)
    with acmefleet.db() as database, database.write() as conn:
        conn.execute(
            update(org_domains)
            .where(org_domains.c.id == domain["id"])
            .values(challenge_started_at=issued)
        )
    before = acmefleet.snapshot()
    detail = refused_check(acmefleet, admin, domain["id"])
    assert detail.startswith(f"the Random Value for {name} expired on ")
    assert detail.endswith("(30 days after it was issued): start a new dns check")
    assert acmefleet.snapshot() == before, "not even an audit row: nothing was looked up"
    # A new check, a new value: that one completes.
    fresh = start_dns(admin, domain["id"])["random_value"]
    place_txt(knot, f"{LABEL}.{name}", fresh)
    assert ok_json(check(admin, domain["id"]))["validation_method"] == "dns"


# ------------------------------------------------------------------ the CLI and the web page


def cli(server: AcmefleetServer, home: Path, token_file: Path, *args: str) -> str:
    """``acmefleet admin ...`` (the real executable, remote mode); its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACMEFLEET_")}
    env["HOME"] = str(home)
    connection = ("--url", server.base_url, "--token-file", str(token_file))
    result = subprocess.run(
        [ACMEFLEET, "admin", *args, *connection, "--ca-bundle", str(server.ca_bundle)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_the_cli_shows_method_scope_and_expiry(
    acmefleet: AcmefleetServer, admin: ConsoleApi, knot: KnotServer, org_id: int, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(make_token(acmefleet, "cli-dns", "admin") + "\n")
    token_file.chmod(0o600)
    name = f"cli.{ZONE}"

    def run(*args: str) -> str:
        return cli(acmefleet, tmp_path, token_file, *args)

    domain = json.loads(run("domain", "add", "acme", name, "--json"))
    started = json.loads(run("domain", "validate", str(domain["id"]), "--dns", "--json"))
    assert (started["method"], started["record_name"]) == ("dns", f"{LABEL}.{name}")
    human = run("domain", "validate", str(domain["id"]), "--dns")
    assert f"DNS check started for {name}; create this TXT record:" in human
    lines = dict(line.split(":", 1) for line in human.splitlines() if ":" in line)
    assert lines["name"].strip() == f"{LABEL}.{name}" and lines["type"].strip() == "TXT"
    value = lines["value"].strip()
    assert value != started["random_value"], "restarted: a new value"
    assert lines["expires"].strip()[:10] == (datetime.now(UTC) + timedelta(days=30)).strftime(
        "%Y-%m-%d"
    )
    assert lines["scope once checked"].strip() == "the name, its subdomains and wildcards"
    shown = run("domain", "show", str(domain["id"]))
    assert "check pending:   dns" in shown

    place_txt(knot, f"{LABEL}.{name}", value)
    done = run("domain", "check", str(domain["id"]))
    until = (datetime.now(UTC) + REUSE).strftime("%Y-%m-%d")
    assert done.strip() == (
        f"{name} is validated by dns until {until} (the name, its subdomains and wildcards)"
    )
    shown = run("domain", "show", str(domain["id"]))
    assert "method:          dns" in shown and f"validated until: {until}" in shown
    assert "scope:           the name, its subdomains and wildcards" in shown
    listed = run("domain", "list", "acme")
    [row] = [line.split() for line in listed.splitlines() if f" {name} " in line]
    assert row[1:3] == [name, "dns"] and "dns" in row and "subdomains" in row and until in row


@pytest.fixture(scope="module")
def browser(acmefleet: AcmefleetServer) -> Iterator[Browser]:
    with chromium(spki_sha256("127.0.0.1", acmefleet.port), acmefleet.ca_bundle) as launched:
        yield launched


def test_the_web_page_shows_method_scope_and_expiry(
    acmefleet: AcmefleetServer, browser: Browser, knot: KnotServer, org_id: int
) -> None:
    name = f"web.{ZONE}"
    with browser_session(browser, acmefleet.base_url) as session:
        login(session, make_token(acmefleet, "web-dns", "admin"))
        page = session.page
        session.goto(f"/console/orgs/{org_id}")
        page.get_by_label("Domain or IP network").fill(name)
        submit(page, page.get_by_role("button", name="Add domain"))
        submit(page, domain_card(page, name).get_by_role("button", name="Start DNS check"))
        card = domain_card(page, name)
        assert card.locator(".badge", has_text="dns check running").count() == 1
        assert card.locator(".record-name").inner_text() == f"{LABEL}.{name}"
        value = card.locator(".random-value").inner_text()
        expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
        assert expires in card.locator(".check-expires").inner_text()
        session.screenshot("dns-check-pending")

        place_txt(knot, f"{LABEL}.{name}", value)
        submit(page, card.get_by_role("button", name="Check now"))
        card = domain_card(page, name)
        assert card.locator(".validation-method").inner_text() == "dns"
        assert card.locator(".validation-scope").inner_text() == "subdomains"
        until = (datetime.now(UTC) + REUSE).strftime("%Y-%m-%d")
        assert until in card.locator(".validated-until").inner_text()
        assert f"Covers {name}, its subdomains and wildcards" in card.inner_text()
        assert card.locator(".pending").count() == 0
        session.screenshot("dns-validated")


def test_a_dns_validation_older_than_the_br_reuse_period_no_longer_counts(
    acmefleet: AcmefleetServer,
    admin: ConsoleApi,
    browser: Browser,
    knot: KnotServer,
    org_id: int,
) -> None:
    """A validation stored with a longer life (397 days, as before the reuse rule) stops
    counting once older than the BR 4.2.1 period in force, whatever its validated_until."""
    name = f"old.{ZONE}"
    domain = admin.add_domain(org_id, name)
    value = start_dns(admin, domain["id"])["random_value"]
    place_txt(knot, f"{LABEL}.{name}", value)
    assert ok_json(check(admin, domain["id"]))["validated"]
    now = datetime.now(UTC)
    with acmefleet.db() as database, database.write() as conn:
        conn.execute(
            update(org_domains)
            .where(org_domains.c.id == domain["id"])
            .values(validated_at=now - REUSE - timedelta(minutes=1), validated_until=now + REUSE)
        )
    shown = ok_json(admin.http.get(f"/domains/{domain['id']}"))
    assert shown["validated"] is False and shown["validation_method"] == "dns"
    with acme_account(acmefleet, admin.mint(org_id, "public")) as acme:
        created = acme.new_order([f"sub.{name}"])
        assert created.json()["status"] == "pending", created.text
    with browser_session(browser, acmefleet.base_url) as session:
        login(session, make_token(acmefleet, "web-dns-old", "admin"))
        session.goto(f"/console/orgs/{org_id}")
        state = domain_card(session.page, name).locator(".domain-state").inner_text()
        assert "is no longer in force: it is older than the BR reuse period" in state
