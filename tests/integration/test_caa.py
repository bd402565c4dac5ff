"""CAA (RFC 8659, RFC 8657) on the public endpoint, against a real authoritative DNS server.

Debian's Knot DNS on loopback serves the CAA records (static ones in the zone file, others put
there with RFC 2136 updates signed by a TSIG key); acmefleet's public endpoint asks it
(``validation.dns_resolvers``) and knows itself as ``acmefleet.test`` (``caa_identities``).
Names are validated with http-01 (the test's own web server on the validator's port) or
dns-01 (TXT records put into knotd), by Debian's lego or by the test ACME client:

* a record naming another CA blocks issuance (``caa``, naming the record and its domain);
  one naming ours allows it; a record on a parent applies to the names below it;
* ``issuewild`` decides for a wildcard, and is ignored for a name that is not one;
* ``accounturi`` and ``validationmethods`` (RFC 8657) are honoured;
* an unknown tag flagged critical forbids; SERVFAIL and a resolver that never answers refuse
  (``dns``), never allow;
* at finalize, a check older than 8 hours (the stored time moved back, no sleeping) is made
  again, and catches a record added after validation; a name validated in the console (no
  challenge) is checked there for the first time;
* the private endpoint never looks at CAA.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from acmefleet.store.schema import authorizations
from acmefleet.validation.dns01 import txt_value
from tests.support.acme_client import AcmeClient, make_csr
from tests.support.acmefleet_server import AcmefleetServer, checked_acmefleet
from tests.support.clients import LegoPaths, check_issued, run_lego
from tests.support.console import Http01Responder
from tests.support.knot import BROKEN_ZONE, ZONE, KnotServer, SilentResolver

pytestmark = pytest.mark.integration
ERR = "urn:ietf:params:acme:error:"
US = "acmefleet.test"
OTHER = "otherca.test"
STATIC_RECORDS = [
    f'ours CAA 0 issue "{US}"',
    f'other-ca CAA 0 issue "{OTHER}"',
    # Several records: one naming us is enough.
    f'both CAA 0 issue "{OTHER}"',
    f'both CAA 0 issue "{US}"',
    # A record on a parent applies to every name below it that has none of its own.
    f'parent CAA 0 issue "{OTHER}"',
    f'own.parent CAA 0 issue "{US}"',
    # issuewild naming another CA, issue naming us; and the other way round.
    f'wild CAA 0 issue "{US}"',
    f'wild CAA 0 issuewild "{OTHER}"',
    f'wildok CAA 0 issue "{OTHER}"',
    f'wildok CAA 0 issuewild "{US}"',
    f'methods CAA 0 issue "{US}; validationmethods=dns-01"',
    # An unknown tag flagged critical forbids, even next to a record naming us.
    'critical CAA 128 tbs "unknown"',
    f'critical CAA 0 issue "{US}"',
    # Not critical: ignored.
    'harmless CAA 0 tbs "unknown"',
    f'harmless CAA 0 issue "{US}"',
    # A CNAME is followed: the RRset at its end is the name's.
    "aliased CNAME other-ca",
]


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    with KnotServer(tmp_path_factory.mktemp("knot"), STATIC_RECORDS) as server:
        yield server


@pytest.fixture(scope="module")
def acmefleet(
    knot: KnotServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcmefleetServer]:
    settings = {
        "dns_resolvers": f'["{knot.address}"]',
        "timeout_seconds": "5",
        "caa_identities": f'["{US}"]',
        "check_caa": "true",
    }
    with checked_acmefleet(tmp_path_factory.mktemp("acmefleet"), settings=settings) as server:
        yield server


@pytest.fixture(scope="module")
def web(acmefleet: AcmefleetServer) -> Iterator[Http01Responder]:
    responder = Http01Responder(acmefleet.http01_port)
    yield responder
    responder.close()


def new_client(server: AcmefleetServer) -> AcmeClient:
    acme = AcmeClient(server.directory("public"), server.ca_bundle)
    response = acme.new_account(server.mint_eab("acme", "public"), contact=["mailto:a@example.com"])
    assert response.status_code == 201, response.text
    return acme


def validate(
    acme: AcmeClient,
    name: str,
    *,
    web: Http01Responder | None = None,
    knot: KnotServer | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new order for ``name``, its one authorization validated with http-01 (``web``) or
    dns-01 (``knot``); (the order, the authorization when validation ended)."""
    created = acme.new_order([name])
    assert created.status_code == 201, created.text
    order = {**created.json(), "url": created.headers["Location"]}
    [authz_url] = order["authorizations"]
    authz = acme.get(authz_url).json()
    kind = "http-01" if web is not None else "dns-01"
    [challenge] = [c for c in authz["challenges"] if c["type"] == kind]
    key_authorization = acme.key.key_authorization(challenge["token"])
    if web is not None:
        web.respond(challenge["token"], key_authorization)
    else:
        assert knot is not None
        record = f"_acme-challenge.{name.removeprefix('*.')}."
        knot.update(ZONE, replace={record: ("TXT", [f'"{txt_value(key_authorization)}"'])})
    assert acme.answer_challenge(challenge["url"]).status_code == 200
    final = acme.poll(authz_url, ("valid", "invalid"), timeout=30)
    return order, final


def refused(final: dict[str, Any]) -> dict[str, Any]:
    """The problem of an authorization that validation (and CAA) ended invalid."""
    assert final["status"] == "invalid", final
    [failed] = [c for c in final["challenges"] if c["status"] == "invalid"]
    problem: dict[str, Any] = failed["error"]
    return problem


def finalize(acme: AcmeClient, order: dict[str, Any], names: list[str]) -> Any:
    csr, _key = make_csr(names)
    return acme.finalize(order["finalize"], csr)


def authz_id(order: dict[str, Any]) -> str:
    return str(order["authorizations"][0]).rsplit("/", 1)[-1]


def caa_checked_at(server: AcmefleetServer, authz: str) -> datetime | None:
    with server.db() as database, database.read() as conn:
        value: datetime | None = conn.execute(
            select(authorizations.c.caa_checked_at).where(authorizations.c.id == authz)
        ).scalar_one()
    return value


def age_caa_check(server: AcmefleetServer, authz: str, hours: float) -> None:
    """The state the passage of time leaves: the stored check ``hours`` old."""
    at = datetime.now(UTC) - timedelta(hours=hours)
    with server.db() as database, database.write() as conn:
        conn.execute(
            update(authorizations).where(authorizations.c.id == authz).values(caa_checked_at=at)
        )


# ------------------------------------------------------------------ real client


def test_lego_is_issued_where_caa_names_us_and_refused_where_it_names_another_ca(
    acmefleet: AcmefleetServer, tmp_path: Path
) -> None:
    def lego(name: str, base: Path) -> Any:
        return run_lego(
            ["--http", "--http.port", f"127.0.0.1:{acmefleet.http01_port}", "-d", name, "run"],
            ca_bundle=acmefleet.ca_bundle,
            base_dir=base,
            directory=acmefleet.directory("public"),
            eab=acmefleet.mint_eab("acme", "public"),
        )

    allowed = lego(f"ours.{ZONE}", tmp_path / "ours").check()
    pem = LegoPaths(tmp_path / "ours").certificate(f"ours.{ZONE}").read_bytes()
    check_issued(acmefleet, pem, [f"ours.{ZONE}"], level="public", context=allowed.describe())

    blocked = lego(f"other-ca.{ZONE}", tmp_path / "other")
    assert blocked.returncode != 0
    output = blocked.stdout + blocked.stderr
    assert "caa" in output and OTHER in output, output[-3000:]
    assert not LegoPaths(tmp_path / "other").certificate(f"other-ca.{ZONE}").exists()


# ------------------------------------------------------------------ issue, the tree walk


def test_a_record_naming_another_ca_blocks_at_validation(
    acmefleet: AcmefleetServer, web: Http01Responder
) -> None:
    with new_client(acmefleet) as acme:
        order, final = validate(acme, f"other-ca.{ZONE}", web=web)
        problem = refused(final)
        # The order is over: its authorization is invalid.
        assert acme.get(order["url"]).json()["status"] == "invalid"
    assert problem["type"] == ERR + "caa"
    assert f'0 issue "{OTHER}"' in problem["detail"], problem
    assert f"CAA records at other-ca.{ZONE}" in problem["detail"], problem
    assert problem["identifier"] == {"type": "dns", "value": f"other-ca.{ZONE}"}
    assert caa_checked_at(acmefleet, authz_id(order)) is None


@pytest.mark.parametrize("label", ["ours", "both", "harmless", "own.parent", "no-caa"])
def test_records_naming_us_or_none_at_all_allow(
    acmefleet: AcmefleetServer, web: Http01Responder, label: str
) -> None:
    name = f"{label}.{ZONE}"
    with new_client(acmefleet) as acme:
        started = datetime.now(UTC)
        order, final = validate(acme, name, web=web)
        assert final["status"] == "valid", final
        response = finalize(acme, order, [name])
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "valid"
    checked = caa_checked_at(acmefleet, authz_id(order))
    assert checked is not None and checked >= started - timedelta(seconds=1)


def test_a_record_on_a_parent_applies_below_it(
    acmefleet: AcmefleetServer, web: Http01Responder
) -> None:
    with new_client(acmefleet) as acme:
        _order, final = validate(acme, f"www.deep.parent.{ZONE}", web=web)
    problem = refused(final)
    assert problem["type"] == ERR + "caa"
    assert f"found at parent.{ZONE}, a parent of www.deep.parent.{ZONE}" in problem["detail"]


def test_a_cname_is_followed_to_its_records(
    acmefleet: AcmefleetServer, web: Http01Responder
) -> None:
    with new_client(acmefleet) as acme:
        _order, final = validate(acme, f"aliased.{ZONE}", web=web)
    problem = refused(final)
    assert problem["type"] == ERR + "caa"
    assert f'0 issue "{OTHER}"' in problem["detail"], problem


def test_a_critical_unknown_tag_forbids(acmefleet: AcmefleetServer, web: Http01Responder) -> None:
    with new_client(acmefleet) as acme:
        _order, final = validate(acme, f"critical.{ZONE}", web=web)
    problem = refused(final)
    assert problem["type"] == ERR + "caa"
    assert '128 tbs "unknown"' in problem["detail"], problem


# ------------------------------------------------------------------ issuewild


def test_issuewild_decides_for_a_wildcard(acmefleet: AcmefleetServer, knot: KnotServer) -> None:
    with new_client(acmefleet) as acme:
        _order, blocked = validate(acme, f"*.wild.{ZONE}", knot=knot)
        order, allowed = validate(acme, f"*.wildok.{ZONE}", knot=knot)
        assert allowed["status"] == "valid", allowed
        assert allowed["wildcard"] is True
        response = finalize(acme, order, [f"*.wildok.{ZONE}"])
        assert response.status_code == 200 and response.json()["status"] == "valid", response.text
    problem = refused(blocked)
    assert problem["type"] == ERR + "caa"
    assert f'0 issuewild "{OTHER}"' in problem["detail"], problem
    assert problem["identifier"] == {"type": "dns", "value": f"*.wild.{ZONE}"}


def test_issuewild_is_ignored_for_a_name_that_is_no_wildcard(
    acmefleet: AcmefleetServer, web: Http01Responder
) -> None:
    with new_client(acmefleet) as acme:
        _order, allowed = validate(acme, f"wild.{ZONE}", web=web)
        _order, blocked = validate(acme, f"wildok.{ZONE}", web=web)
    assert allowed["status"] == "valid", allowed
    problem = refused(blocked)
    assert problem["type"] == ERR + "caa"
    assert f'0 issue "{OTHER}"' in problem["detail"], problem


# ------------------------------------------------------------------ RFC 8657 parameters


def test_accounturi_allows_that_account_only(
    acmefleet: AcmefleetServer, knot: KnotServer, web: Http01Responder
) -> None:
    name = f"account.{ZONE}"
    with new_client(acmefleet) as owner, new_client(acmefleet) as stranger:
        record = f'0 issue "{US}; accounturi={owner.kid}"'
        knot.update(ZONE, replace={f"{name}.": ("CAA", [record])})
        _order, theirs = validate(stranger, name, web=web)
        _order, mine = validate(owner, name, web=web)
    assert mine["status"] == "valid", mine
    problem = refused(theirs)
    assert problem["type"] == ERR + "caa"
    assert f"accounturi={owner.kid}" in problem["detail"], problem


def test_validationmethods_allows_the_listed_method_only(
    acmefleet: AcmefleetServer, knot: KnotServer, web: Http01Responder
) -> None:
    name = f"methods.{ZONE}"
    with new_client(acmefleet) as acme:
        _order, by_http = validate(acme, name, web=web)
        _order, by_dns = validate(acme, name, knot=knot)
    assert by_dns["status"] == "valid", by_dns
    problem = refused(by_http)
    assert problem["type"] == ERR + "caa"
    assert "the method http-01" in problem["detail"], problem


# ------------------------------------------------------------------ lookup failures refuse


def test_servfail_refuses(acmefleet: AcmefleetServer, web: Http01Responder) -> None:
    # broken.test is configured in knotd but its zone does not load: SERVFAIL for CAA.
    with new_client(acmefleet) as acme:
        _order, final = validate(acme, f"www.{BROKEN_ZONE}", web=web)
    problem = refused(final)
    assert problem["type"] == ERR + "dns"
    assert "CAA could not be checked" in problem["detail"], problem
    assert "SERVFAIL" in problem["detail"], problem


def test_a_resolver_that_never_answers_refuses(tmp_path: Path) -> None:
    silent = SilentResolver()
    settings = {
        "dns_resolvers": f'["{silent.address}"]',
        "timeout_seconds": "2",
        "check_caa": "true",
    }
    try:
        with checked_acmefleet(tmp_path, settings=settings) as server, new_client(server) as acme:
            web = Http01Responder(server.http01_port)
            try:
                started = time.monotonic()
                _order, final = validate(acme, f"silent.{ZONE}", web=web)
                took = time.monotonic() - started
            finally:
                web.close()
    finally:
        silent.close()
    problem = refused(final)
    assert problem["type"] == ERR + "dns"
    assert "CAA" in problem["detail"] and "within 2 s" in problem["detail"], problem
    assert took < 15, took


# ------------------------------------------------------------------ finalize: the 8-hour rule


def test_a_check_older_than_8_hours_is_made_again_at_finalize(
    acmefleet: AcmefleetServer, knot: KnotServer, web: Http01Responder
) -> None:
    fresh, aged = f"fresh.{ZONE}", f"aged.{ZONE}"
    with new_client(acmefleet) as acme:
        fresh_order, final = validate(acme, fresh, web=web)
        assert final["status"] == "valid"
        aged_order, final = validate(acme, aged, web=web)
        assert final["status"] == "valid"
        # After validation, both names' owners publish a record naming another CA.
        for name in (fresh, aged):
            knot.update(ZONE, replace={f"{name}.": ("CAA", [f'0 issue "{OTHER}"'])})
        age_caa_check(acmefleet, authz_id(aged_order), hours=8.5)
        # Checked 7 hours ago: within BR 3.2.2.8's 8 hours, the check at validation holds.
        age_caa_check(acmefleet, authz_id(fresh_order), hours=7)
        issued = finalize(acme, fresh_order, [fresh])
        assert issued.status_code == 200 and issued.json()["status"] == "valid", issued.text
        before = acmefleet.count("certificates")
        refused_now = finalize(acme, aged_order, [aged])
        order_now = acme.get(aged_order["url"]).json()
    assert refused_now.status_code == 403, refused_now.text
    problem = refused_now.json()
    assert problem["type"] == ERR + "caa"
    assert f"CAA records at {aged}" in problem["detail"] and OTHER in problem["detail"]
    # The order is over, with the same problem; nothing was issued.
    assert order_now["status"] == "invalid"
    assert order_now["error"]["type"] == ERR + "caa"
    assert acmefleet.count("certificates") == before


def test_a_name_validated_in_the_console_is_checked_at_finalize(
    acmefleet: AcmefleetServer, knot: KnotServer
) -> None:
    allowed, blocked = f"console-ok.{ZONE}", f"console-no.{ZONE}"
    acmefleet.add_domain("acme", allowed, validated=True)
    acmefleet.add_domain("acme", blocked, validated=True)
    # A console validation's RFC 8657 method is "ca-manual": not http-01.
    knot.update(
        ZONE,
        replace={
            f"{allowed}.": ("CAA", [f'0 issue "{US}; validationmethods=http-01,ca-manual"']),
            f"{blocked}.": ("CAA", [f'0 issue "{US}; validationmethods=http-01"']),
        },
    )
    with new_client(acmefleet) as acme:
        orders = {}
        for name in (allowed, blocked):
            created = acme.new_order([name])
            assert created.status_code == 201 and created.json()["status"] == "ready"
            orders[name] = {**created.json(), "url": created.headers["Location"]}
        issued = finalize(acme, orders[allowed], [allowed])
        refused_now = finalize(acme, orders[blocked], [blocked])
    assert issued.status_code == 200 and issued.json()["status"] == "valid", issued.text
    assert caa_checked_at(acmefleet, authz_id(orders[allowed])) is not None
    assert refused_now.json()["type"] == ERR + "caa", refused_now.text
    assert "the method ca-manual" in refused_now.json()["detail"]


def test_a_failed_lookup_at_finalize_changes_nothing(acmefleet: AcmefleetServer) -> None:
    name = f"www.{BROKEN_ZONE}"
    acmefleet.add_domain("acme", name, validated=True)
    with new_client(acmefleet) as acme:
        created = acme.new_order([name])
        assert created.status_code == 201 and created.json()["status"] == "ready"
        before = acmefleet.snapshot()
        response = finalize(acme, created.json(), [name])
        after = acmefleet.snapshot()
        status = acme.get(created.headers["Location"]).json()["status"]
    assert response.json()["type"] == ERR + "dns", response.text
    assert "SERVFAIL" in response.json()["detail"]
    assert after == before
    assert status == "ready"


# ------------------------------------------------------------------ private endpoints


def test_the_private_endpoint_never_checks_caa(acmefleet: AcmefleetServer) -> None:
    name = f"other-ca.{ZONE}"
    acmefleet.add_domain("acme", name)
    acme = AcmeClient(acmefleet.directory("private"), acmefleet.ca_bundle)
    with acme:
        assert acme.new_account(acmefleet.mint_eab("acme", "private")).status_code == 201
        pem = acme.issue_certificate([name])
    assert "BEGIN CERTIFICATE" in pem


def test_turned_off_for_a_closed_network_it_is_not_checked(
    tmp_path: Path, knot: KnotServer
) -> None:
    """``check_caa = false`` (a lab without DNS): issued despite the record, and the server
    warns at start-up that public certificates skip CAA."""
    settings = {"dns_resolvers": f'["{knot.address}"]', "check_caa": "false"}
    with checked_acmefleet(tmp_path, settings=settings) as server, new_client(server) as acme:
        web = Http01Responder(server.http01_port)
        try:
            order, final = validate(acme, f"other-ca.{ZONE}", web=web)
            assert final["status"] == "valid", final
            response = finalize(acme, order, [f"other-ca.{ZONE}"])
        finally:
            web.close()
        log = server.log_text()
    assert response.status_code == 200 and response.json()["status"] == "valid", response.text
    assert "validation.check_caa is false" in log
