"""A domain validated in the console spares public orders their challenge, and only while it is.

Debian's real lego orders on the ``public`` endpoint (EAB credentials minted through the
console API; lego's own http-01 listener on the port the server validates against):

* validated (manually, through the API): the order needs no challenge, the certificate is
  issued, and the server's ``challenges`` table does not grow;
* the validation removed through the API: the same order (same account, same name), and
  an order for a new name from a new account, each get an http-01 challenge that lego
  answers;
* the validation expired: as removed. The server reads the system clock, so expiry is
  simulated by moving the domain's ``validated_until`` into the past in the database:
  that is exactly the state the passage of time would leave behind.

Those validations are manual ones of the scope ``subdomains`` (the names ordered lie below
the validated domain). An http-01 check in the console validates the name only: ``www.`` and
deeper names get their challenges, and a wildcard only dns-01 (CA/B BR 3.2.2.4.18/19: the
check proves one host, never the names below it).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from acmefleet.config import CHALLENGE_TYPES
from acmefleet.store.schema import org_domains
from tests.support.acmefleet_server import AcmefleetServer
from tests.support.clients import (
    ClientRun,
    LegoPaths,
    challenges_for,
    check_issued,
    run_lego,
)
from tests.support.console import (
    ConsoleApi,
    Http01Responder,
    acme_account,
    console_api,
    ok_json,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin(acmefleet: AcmefleetServer) -> Iterator[ConsoleApi]:
    with console_api(acmefleet, "admin") as api:
        yield api


@pytest.fixture(scope="module")
def acme_org_id(admin: ConsoleApi) -> int:
    """The shared fixture's organisation ``acme``."""
    [org] = [o for o in ok_json(admin.http.get("/organizations")) if o["name"] == "acme"]
    return int(org["id"])


class Lego:
    """One lego account (its own ``--path`` and EAB credential) on the public endpoint."""

    def __init__(self, server: AcmefleetServer, admin: ConsoleApi, org_id: int, path: Path):
        self.server = server
        self.path = path
        minted = admin.mint(org_id, "public")
        self.eab = (minted["kid"], minted["hmac_key"])

    def run(self, name: str) -> tuple[ClientRun, int]:
        """``lego run`` for ``name``: the run, and how many authorizations the server created
        with challenges (each gets one challenge of every type the endpoint offers)."""
        before = self.server.count("challenges")
        run = run_lego(
            ["--http", "--http.port", f"127.0.0.1:{self.server.http01_port}", "-d", name, "run"],
            ca_bundle=self.server.ca_bundle,
            base_dir=self.path,
            directory=self.server.directory("public"),
            eab=self.eab,  # used once: lego keeps the account under --path afterwards
        ).check()
        pem = LegoPaths(self.path).certificate(name).read_bytes()
        check_issued(self.server, pem, [name], level="public", context=run.describe())
        created = self.server.count("challenges") - before
        assert created % len(CHALLENGE_TYPES) == 0, created
        return run, created // len(CHALLENGE_TYPES)


def authorizations(server: AcmefleetServer, name: str) -> list[str]:
    """``authz status/challenge type/challenge status`` of every order for ``name``, sorted."""
    rows = challenges_for(server, [name])
    # The alternatives lego left untried (dns-01, tls-alpn-01 next to its http-01) are not shown.
    tried = [
        r for r in rows if r["challenge_status"] != "pending" or r["authz_status"] == "pending"
    ]
    return sorted(f"{r['authz_status']}/{r['type']}/{r['challenge_status']}" for r in tried)


WITHOUT_CHALLENGE = "valid/None/None"
WITH_HTTP01 = "valid/http-01/valid"


def test_removed_validation_brings_back_the_challenge(
    acmefleet: AcmefleetServer,
    admin: ConsoleApi,
    acme_org_id: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    domain = admin.add_domain(acme_org_id, "console-removed.example.org")
    validated = admin.validate_manually(
        domain["id"], justification="owner confirmed by phone", scope="subdomains"
    )
    assert validated["validated"] and validated["validation_method"] == "manual"
    name = "www.console-removed.example.org"

    first = Lego(acmefleet, admin, acme_org_id, tmp_path_factory.mktemp("lego-removed-1"))
    _run, created = first.run(name)
    assert created == 0
    assert authorizations(acmefleet, name) == [WITHOUT_CHALLENGE]

    removed = ok_json(admin.http.delete(f"/domains/{domain['id']}/validation"))
    assert removed["validated"] is False and removed["validated_until"] is None

    # The same order again (same account, same name): now it needs its challenge.
    _run, created = first.run(name)
    assert created == 1
    assert authorizations(acmefleet, name) == sorted([WITHOUT_CHALLENGE, WITH_HTTP01])

    # A new name under the domain, from a new account: challenged too.
    other = "new.console-removed.example.org"
    second = Lego(acmefleet, admin, acme_org_id, tmp_path_factory.mktemp("lego-removed-2"))
    _run, created = second.run(other)
    assert created == 1
    assert authorizations(acmefleet, other) == [WITH_HTTP01]


def test_expired_validation_brings_back_the_challenge(
    acmefleet: AcmefleetServer,
    admin: ConsoleApi,
    acme_org_id: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    domain = admin.add_domain(acme_org_id, "console-expiring.example.org")
    validated = admin.validate_manually(
        domain["id"], days=30, justification="DNS TXT checked", scope="subdomains"
    )
    assert validated["validated"]
    lego = Lego(acmefleet, admin, acme_org_id, tmp_path_factory.mktemp("lego-expiring"))

    name = "before.console-expiring.example.org"
    _run, created = lego.run(name)
    assert created == 0
    assert authorizations(acmefleet, name) == [WITHOUT_CHALLENGE]

    # Thirty days pass: the validation's end is now behind us (the row time would leave).
    with acmefleet.db() as db, db.write() as conn:
        conn.execute(
            update(org_domains)
            .where(org_domains.c.id == domain["id"])
            .values(validated_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    shown = ok_json(admin.http.get(f"/domains/{domain['id']}"))
    assert shown["validated"] is False and shown["validation_method"] == "manual"

    for name in ("before.console-expiring.example.org", "after.console-expiring.example.org"):
        _run, created = lego.run(name)
        assert created == 1, name
    assert authorizations(acmefleet, "after.console-expiring.example.org") == [WITH_HTTP01]
    assert authorizations(acmefleet, "before.console-expiring.example.org") == sorted(
        [WITHOUT_CHALLENGE, WITH_HTTP01]
    )


def test_an_http01_check_spares_only_the_name_itself(
    acmefleet: AcmefleetServer, admin: ConsoleApi, acme_org_id: int
) -> None:
    """The console's http-01 check of loop.test: *.loop.test and deep.er.sub.loop.test are
    not issued without a challenge; loop.test itself is."""
    domain = admin.add_domain(acme_org_id, "loop.test")
    url = f"/domains/{domain['id']}/validation"
    started = ok_json(admin.http.post(url, json={"method": "http-01"}))
    web = Http01Responder(acmefleet.http01_port)
    try:
        web.respond(started["token"], started["expected_content"])
        checked = ok_json(admin.http.post(f"{url}/check"))
    finally:
        web.close()
    assert checked["validated"] and checked["validation_scope"] == "exact"

    before = acmefleet.count("challenges")
    with acme_account(acmefleet, admin.mint(acme_org_id, "public")) as acme:
        apex = acme.new_order(["loop.test"])
        assert apex.json()["status"] == "ready", apex.text
        deep = acme.new_order(["deep.er.sub.loop.test"])
        assert deep.json()["status"] == "pending", deep.text
        [authz_url] = deep.json()["authorizations"]
        authz = acme.get(authz_url).json()
        assert authz["status"] == "pending"
        assert [c["type"] for c in authz["challenges"]] == ["http-01", "dns-01", "tls-alpn-01"]
        wildcard = acme.new_order(["*.loop.test"])
        assert wildcard.json()["status"] == "pending", wildcard.text
        [authz_url] = wildcard.json()["authorizations"]
        authz = acme.get(authz_url).json()
        assert authz["wildcard"] is True
        assert [c["type"] for c in authz["challenges"]] == ["dns-01"]
    assert acmefleet.count("challenges") - before == len(CHALLENGE_TYPES) + 1
