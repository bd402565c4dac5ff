"""A console validation spares public orders their challenge only within its scope.

An http-01 check of ``loop.test`` proves control of that one FQDN (CA/B BR 3.2.2.4.18/19,
ballot SC45): it must not issue ``*.loop.test`` nor ``deep.er.sub.loop.test`` without a
challenge. A manual validation is ``exact`` unless the administrator asks for ``subdomains``.
Private endpoints keep their ownership rule: an organisation's domain covers its subtree, no
validation involved. Orders go through ``policy.orders.new_order`` on a real database.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acmefleet.baseline import dcv_reuse_period
from acmefleet.ca.profiles import DEFAULT_PROFILES
from acmefleet.clock import FixedClock
from acmefleet.config import EndpointConfig, RateLimits
from acmefleet.console import domain_checks, organisations
from acmefleet.console.errors import ConsoleError
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.models import Account, Order, OrgDomain
from acmefleet.policy.names import covering_domain, validated_domain, validation_covers
from acmefleet.policy.orders import Lifetimes, new_order
from acmefleet.store import orgs as org_store
from acmefleet.store.engine import Database
from tests.unit import rows
from tests.unit.rows import NOW

PUBLIC = EndpointConfig("public", "public", "public", ("public-dv",), "public-dv")
# An endpoint that offers http-01 only: a wildcard has no challenge to be proven by there.
HTTP_ONLY = replace(PUBLIC, challenges=("http-01",))
ALL_TYPES = ("http-01", "dns-01", "tls-alpn-01")
PRIVATE = EndpointConfig("private", "private", "private", ("private-server",), "private-server")
LIFETIMES = Lifetimes(order=timedelta(days=7), authorization=timedelta(days=30))
DOMAIN = "loop.test"
BELOW = ["www.loop.test", "deep.er.sub.loop.test"]
WILDCARDS = ["*.loop.test", "*.www.loop.test"]


class Answers:
    """A validator that finds the expected content (the console's check then succeeds)."""

    challenge_type = "http-01"
    deadline = timedelta(seconds=5)

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        self.asked.append(identifier.value)


def _account(database: Database, endpoint: str = "public") -> tuple[Account, str]:
    with database.write() as conn:
        account = rows.account(conn, endpoint)
        org = org_store.get_org(conn, account.org_id)
        assert org is not None
        organisations.add_domain(conn, org.name, DOMAIN, validated=False, actor="t", now=NOW)
    return account, org.name


def _domain(database: Database, account: Account) -> OrgDomain:
    with database.read() as conn:
        found = org_store.find_domain(conn, account.org_id, DOMAIN)
    assert found is not None
    return found


def _http01(database: Database, account: Account) -> OrgDomain:
    """The console's own http-01 check of the domain, start to success."""
    clock = FixedClock(NOW)
    domain = _domain(database, account)
    domain_checks.start(database, clock, domain.id, http01_port=80, actor="t")
    validator = Answers()
    asyncio.run(domain_checks.check(database, clock, {"http-01": validator}, domain.id, actor="t"))
    assert validator.asked == [DOMAIN]
    return _domain(database, account)


class TxtFound:
    """A TXT lookup that finds the Random Value (the console's DNS check then succeeds); the
    real lookup against Knot is tests/integration/test_console_dns_validation.py."""

    deadline = timedelta(seconds=5)

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def expect_txt(self, name: str, value: str) -> None:
        self.asked.append((name, value))


def _dns(database: Database, account: Account) -> OrgDomain:
    """The console's DNS check of the domain (BR 3.2.2.4.7), start to success."""
    clock = FixedClock(NOW)
    domain = _domain(database, account)
    started = domain_checks.start(
        database, clock, domain.id, method="dns", http01_port=80, actor="t"
    )
    checker = TxtFound()
    asyncio.run(domain_checks.check(database, clock, {"dns-01": checker}, domain.id, actor="t"))  # type: ignore[dict-item]
    assert checker.asked == [(f"_acmefleet-challenge.{DOMAIN}", started.token)]
    return _domain(database, account)


def _manual(database: Database, account: Account, **scope: str) -> OrgDomain:
    domain = _domain(database, account)
    with database.write() as conn:
        return organisations.validate_manually(
            conn, domain.id, justification="ticket OPS-1", actor="t", now=NOW, **scope
        )


def _order(
    database: Database, account: Account, name: str, endpoint: EndpointConfig = PUBLIC
) -> Order:
    payload: dict[str, Any] = {"identifiers": [{"type": "dns", "value": name}]}
    with database.write() as conn:
        return new_order(
            conn,
            endpoint=endpoint,
            account=account,
            payload=payload,
            lifetimes=LIFETIMES,
            limits=RateLimits(),
            profiles=DEFAULT_PROFILES,
            now=NOW,
        )


def _spared(order: Order) -> bool:
    """The order's one authorization is valid at once, without a challenge."""
    [authz] = order.authorizations
    return authz.stored_status == "valid" and authz.challenges == ()


def _challenged(order: Order, types: tuple[str, ...] = ALL_TYPES) -> bool:
    """Pending, with one challenge of each of ``types`` (a wildcard: dns-01 alone)."""
    [authz] = order.authorizations
    return authz.stored_status == "pending" and tuple(c.type for c in authz.challenges) == types


def _dns01_only(order: Order) -> bool:
    return _challenged(order, ("dns-01",)) and order.authorizations[0].wildcard


def _refused(
    database: Database, account: Account, name: str, endpoint: EndpointConfig = HTTP_ONLY
) -> AcmeError:
    with pytest.raises(AcmeError) as caught:
        _order(database, account, name, endpoint)
    assert caught.value.type is ProblemType.REJECTED_IDENTIFIER
    return caught.value


def test_an_http01_check_covers_exactly_the_name(database: Database) -> None:
    account, _org = _account(database)
    domain = _http01(database, account)
    assert domain.validation_method == "http-01" and domain.validation_scope == "exact"

    assert _spared(_order(database, account, DOMAIN))
    for name in BELOW:
        assert _challenged(_order(database, account, name)), name
    for name in WILDCARDS:
        assert _dns01_only(_order(database, account, name)), name
        assert "subdomains" in _refused(database, account, name).detail


def test_a_dns_check_covers_the_name_its_subdomains_and_wildcards(database: Database) -> None:
    account, _org = _account(database)
    domain = _dns(database, account)
    assert (domain.validation_method, domain.validation_scope) == ("dns", "subdomains")
    assert domain.challenge_token is None and domain.challenge_method is None
    for name in [DOMAIN, *BELOW, *WILDCARDS]:
        assert _spared(_order(database, account, name)), name
        # Even where no challenge could prove a wildcard.
        assert _spared(_order(database, account, name, HTTP_ONLY)), name
    assert _challenged(_order(database, account, "badloop.test"))


def test_a_check_holds_for_the_br_reuse_period(database: Database) -> None:
    """BR 4.2.1 (SC-081): 200 days for a validation completed on 2026-12-01."""
    account, _org = _account(database)
    domain = _dns(database, account)
    assert domain.validated_at == NOW
    assert domain.validated_until == NOW + timedelta(days=200)
    assert _http01(database, account).validated_until == NOW + timedelta(days=200)


@pytest.mark.parametrize(
    ("at", "days"),
    [
        (datetime(2026, 3, 14, 23, 59, tzinfo=UTC), 398),
        (datetime(2026, 3, 15, tzinfo=UTC), 200),
        (datetime(2027, 3, 14, 23, 59, tzinfo=UTC), 200),
        (datetime(2027, 3, 15, tzinfo=UTC), 100),
        (datetime(2029, 3, 15, tzinfo=UTC), 10),
    ],
)
def test_the_br_reuse_schedule(at: datetime, days: int) -> None:
    assert dcv_reuse_period(at) == timedelta(days=days)


@pytest.mark.parametrize(
    ("method", "counts"), [("dns", False), ("http-01", False), ("manual", True)]
)
def test_a_checked_validation_stops_counting_when_the_reuse_period_shrinks(
    method: str, counts: bool
) -> None:
    """Stored with 397 days on 2026-12-01; on 2027-04-01 (121 days on) the BR allow 100."""
    domain = replace(
        _validated("subdomains", method=method),
        validated_at=NOW,
        validated_until=NOW + timedelta(days=397),
    )
    assert domain.is_validated(datetime(2027, 3, 14, tzinfo=UTC))
    later = datetime(2027, 4, 1, tzinfo=UTC)
    assert domain.is_validated(later) is counts
    assert (validated_domain([domain], Identifier("dns", DOMAIN), later) is not None) is counts


def test_an_http01_check_replaces_a_dns_validation_and_narrows_it(database: Database) -> None:
    account, _org = _account(database)
    _dns(database, account)
    assert _http01(database, account).validation_scope == "exact"
    assert _challenged(_order(database, account, BELOW[0]))
    _refused(database, account, WILDCARDS[0])


def test_a_manual_validation_is_exact_unless_asked(database: Database) -> None:
    account, _org = _account(database)
    assert _manual(database, account).validation_scope == "exact"

    assert _spared(_order(database, account, DOMAIN))
    for name in BELOW:
        assert _challenged(_order(database, account, name)), name
    for name in WILDCARDS:
        assert _dns01_only(_order(database, account, name)), name
        _refused(database, account, name)


def test_a_manual_validation_of_the_subtree_covers_subdomains_and_wildcards(
    database: Database,
) -> None:
    account, _org = _account(database)
    assert _manual(database, account, scope="subdomains").validation_scope == "subdomains"
    for name in [DOMAIN, *BELOW, *WILDCARDS]:
        assert _spared(_order(database, account, name)), name
    # Not a sibling that merely ends with the same letters.
    assert _challenged(_order(database, account, "badloop.test"))


def test_an_http01_check_replaces_a_wider_manual_validation(database: Database) -> None:
    """The latest validation is the one that counts, scope included."""
    account, _org = _account(database)
    _manual(database, account, scope="subdomains")
    assert _http01(database, account).validation_scope == "exact"
    assert _challenged(_order(database, account, BELOW[0]))
    assert _dns01_only(_order(database, account, WILDCARDS[0]))
    _refused(database, account, WILDCARDS[0])


def test_each_challenge_has_its_own_token(database: Database) -> None:
    account, _org = _account(database)
    [authz] = _order(database, account, BELOW[0]).authorizations
    assert len({c.token for c in authz.challenges}) == len(ALL_TYPES)


def test_an_endpoint_without_challenges_refuses_unvalidated_names(database: Database) -> None:
    account, _org = _account(database)
    refused = _refused(database, account, BELOW[0], replace(PUBLIC, challenges=()))
    assert "offers no challenge" in refused.detail


def test_an_unknown_scope_is_refused(database: Database) -> None:
    account, _org = _account(database)
    with pytest.raises(ConsoleError, match="exact, subdomains"):
        _manual(database, account, scope="everything")
    assert _domain(database, account).validated_at is None


def test_removing_the_validation_clears_its_scope(database: Database) -> None:
    account, _org = _account(database)
    domain = _manual(database, account, scope="subdomains")
    with database.write() as conn:
        undone = organisations.unvalidate(conn, domain.id, actor="t", now=NOW)
    assert undone.validation_scope is None and undone.validation_method is None


def test_private_endpoints_keep_the_ownership_rule(database: Database) -> None:
    """An organisation's domain covers its subtree there, validated or not, any scope."""
    account, _org = _account(database, "private")
    for name in [DOMAIN, *BELOW, *WILDCARDS]:
        assert _spared(_order(database, account, name, PRIVATE)), name
    _http01(database, account)
    for name in [DOMAIN, *BELOW, *WILDCARDS]:
        assert _spared(_order(database, account, name, PRIVATE)), name


def _validated(
    scope: str | None,
    *,
    until: timedelta = timedelta(days=1),
    kind: str = "dns",
    method: str = "manual",
) -> OrgDomain:
    return OrgDomain(
        1,
        1,
        DOMAIN if kind == "dns" else "10.0.0.0/8",
        kind,  # type: ignore[arg-type]
        NOW - timedelta(days=1),
        NOW + until,
        method,
        "t",
        validation_scope=scope,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("scope", "name", "covered"),
    [
        ("exact", "loop.test", True),
        ("exact", "www.loop.test", False),
        ("exact", "*.loop.test", False),
        ("subdomains", "loop.test", True),
        ("subdomains", "a.b.loop.test", True),
        ("subdomains", "*.loop.test", True),
        ("subdomains", "xloop.test", False),
        # A row without a scope (or with a stray value) counts as the narrow one.
        (None, "loop.test", True),
        (None, "www.loop.test", False),
        ("everything", "*.loop.test", False),
    ],
)
def test_validation_coverage_rules(scope: str | None, name: str, covered: bool) -> None:
    identifier = Identifier("dns", name)
    assert validation_covers(_validated(scope), identifier, NOW) is covered
    # Ownership ignores the scope: the subtree always belongs to the organisation.
    assert covering_domain([_validated(scope)], identifier) is not None or name == "xloop.test"


@pytest.mark.parametrize(
    ("method", "subtree"),
    [
        ("dns", True),
        ("manual", True),
        # A row that says "subdomains" on a method that proves one host stays exact.
        ("http-01", False),
        ("tls-alpn-01", False),
        (None, False),
        ("dns-01", False),
    ],
)
def test_only_a_dns_check_or_a_manual_attestation_covers_a_subtree(
    method: str | None, subtree: bool
) -> None:
    domain = _validated("subdomains", method=method)  # type: ignore[arg-type]
    assert validation_covers(domain, Identifier("dns", DOMAIN), NOW)
    for name in [*BELOW, *WILDCARDS]:
        assert validation_covers(domain, Identifier("dns", name), NOW) is subtree, name


def test_expired_validations_and_ip_networks_spare_nothing() -> None:
    expired = _validated("subdomains", until=timedelta(0))
    assert validated_domain([expired], Identifier("dns", DOMAIN), NOW) is None
    network = _validated("subdomains", kind="ip")
    assert validated_domain([network], Identifier("ip", "10.1.2.3"), NOW) is None
    assert covering_domain([network], Identifier("ip", "10.1.2.3")) == network
    unvalidated = replace(_validated("exact"), validated_until=None)
    assert validated_domain([unvalidated], Identifier("dns", DOMAIN), NOW) is None
