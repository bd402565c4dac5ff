"""Authorization reuse within a window (CA/B BR 4.2.1, 3.2.2.4: at most the period in force).

A name proven by a challenge serves later orders of the same account within the window
counted from its validation; with the scope "organisation" also those of the other accounts
of its organisation on the same endpoint, never another organisation's. Wildcard and
non-wildcard authorizations are kept apart. Orders go through ``policy.orders.new_order``
and validations through ``policy.challenges`` on a real migrated database.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection

from acmefleet.baseline import dcv_reuse_until
from acmefleet.ca.profiles import DEFAULT_PROFILES
from acmefleet.clock import FixedClock
from acmefleet.config import ConfigError, EndpointConfig, RateLimits, parse_config
from acmefleet.console import organisations
from acmefleet.identifiers import Identifier
from acmefleet.models import Account, Order
from acmefleet.policy import challenges as challenge_policy
from acmefleet.policy.orders import Lifetimes, new_order
from acmefleet.policy.reuse import Reuse
from acmefleet.store import accounts as account_store
from acmefleet.store import orders as order_store
from acmefleet.store import orgs as org_store
from acmefleet.store.engine import Database
from acmefleet.store.ids import new_id
from tests.unit import rows
from tests.unit.rows import NOW

PUBLIC = EndpointConfig("public", "public", "public", ("public-dv",), "public-dv")
LIFETIMES = Lifetimes(order=timedelta(days=7), authorization=timedelta(days=30))
DOMAIN = "loop.test"
NAME = "www.loop.test"
TEN_DAYS = Reuse(window=timedelta(days=10))
ORG_SCOPE = Reuse(window=timedelta(days=10), scope="organisation")


class Passes:
    """A validator that finds what it looks for."""

    deadline = timedelta(seconds=5)

    def __init__(self, challenge_type: str) -> None:
        self.challenge_type = challenge_type

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        return None


def _account(database: Database, org_of: Account | None = None) -> Account:
    """A public-endpoint account owning loop.test (not validated in the console): of a new
    organisation, or of ``org_of``'s."""
    with database.write() as conn:
        account = rows.account(conn, "public")
        if org_of is not None:
            account = _colleague(conn, account, org_of.org_id)
        org = org_store.get_org(conn, account.org_id)
        assert org is not None
        if org_store.find_domain(conn, org.id, DOMAIN) is None:
            organisations.add_domain(conn, org.name, DOMAIN, validated=False, actor="t", now=NOW)
    return account


def _colleague(conn: Connection, account: Account, org_id: int) -> Account:
    """``account`` again, as an account of the organisation ``org_id`` (new ids)."""
    moved = replace(account, id=new_id(), org_id=org_id, eab_kid=new_id(), thumbprint=new_id())
    account_store.insert_account(conn, moved)
    return moved


def _order(
    database: Database, account: Account, name: str, at: datetime, reuse: Reuse = TEN_DAYS
) -> Order:
    payload: dict[str, Any] = {"identifiers": [{"type": "dns", "value": name}]}
    with database.write() as conn:
        return new_order(
            conn,
            endpoint=PUBLIC,
            account=account,
            payload=payload,
            lifetimes=LIFETIMES,
            limits=RateLimits(),
            profiles=DEFAULT_PROFILES,
            now=at,
            reuse=reuse,
        )


def _validate(database: Database, order: Order, at: datetime) -> str:
    """Prove the order's one authorization through its first challenge at ``at``."""
    [authz] = order.authorizations
    challenge = authz.challenges[0]
    validators = {challenge.type: Passes(challenge.type)}
    with database.write() as conn:
        assert challenge_policy.start(conn, challenge, authz, validators, at)
    asyncio.run(challenge_policy.validate(database, FixedClock(at), validators, challenge.id))
    with database.read() as conn:
        stored = order_store.get_authorization(conn, authz.id)
    assert stored is not None and stored.stored_status == "valid"
    return authz.id


def _one(order: Order) -> tuple[str, str]:
    [authz] = order.authorizations
    return authz.id, authz.stored_status


def test_within_the_window_the_validation_is_reused_outside_it_is_not(
    database: Database,
) -> None:
    account = _account(database)
    proven = _validate(database, _order(database, account, NAME, NOW), NOW)

    later = _order(database, account, NAME, NOW + timedelta(days=9))
    assert _one(later) == (proven, "valid")
    assert later.status(NOW + timedelta(days=9)) == "ready"
    # The order ends when the validation may no longer be used, not a week later.
    assert later.expires_at == NOW + timedelta(days=10)

    too_late = _order(database, account, NAME, NOW + timedelta(days=10, seconds=1))
    authz_id, status = _one(too_late)
    assert authz_id != proven and status == "pending"


def test_a_window_of_zero_never_reuses(database: Database) -> None:
    account = _account(database)
    proven = _validate(database, _order(database, account, NAME, NOW), NOW)
    again = _order(database, account, NAME, NOW + timedelta(minutes=1), Reuse(timedelta(0)))
    authz_id, status = _one(again)
    assert authz_id != proven and status == "pending"


def test_a_pending_authorization_of_the_account_is_reused_whatever_the_window(
    database: Database,
) -> None:
    """Nothing proven is reused: it only keeps one account from piling up pending ones."""
    account = _account(database)
    first = _order(database, account, NAME, NOW)
    again = _order(database, account, NAME, NOW + timedelta(minutes=1), Reuse(timedelta(0)))
    assert _one(again) == (_one(first)[0], "pending")


def test_another_account_of_the_organisation_only_with_the_organisation_scope(
    database: Database,
) -> None:
    first = _account(database)
    colleague = _account(database, org_of=first)
    proven = _validate(database, _order(database, first, NAME, NOW), NOW)
    at = NOW + timedelta(days=2)

    own_scope = _order(database, colleague, NAME, at, TEN_DAYS)
    assert _one(own_scope)[1] == "pending", "scope 'account': the colleague proves it anew"

    with database.write() as conn:  # start clean: drop the colleague's pending one
        order_store.set_authorization_status(
            conn, own_scope.authorizations[0].id, expected="pending", status="deactivated"
        )
    shared = _order(database, colleague, NAME, at, ORG_SCOPE)
    [authz] = shared.authorizations
    # The colleague's own authorization (RFC 8555 §7.5: it may fetch only its own), valid
    # at once, carrying the proof it rests on: the challenge type, token and its time.
    assert authz.id != proven and authz.account_id == colleague.id
    assert authz.stored_status == "valid" and shared.status(at) == "ready"
    with database.read() as conn:
        original = order_store.get_authorization(conn, proven)
        stored = order_store.get_authorization(conn, authz.id)
    assert original is not None and stored is not None
    [proof] = [c for c in original.challenges if c.status == "valid"]
    [copied] = stored.challenges
    assert (copied.type, copied.token, copied.status) == (proof.type, proof.token, "valid")
    assert copied.validated_at == proof.validated_at == NOW
    assert stored.expires_at == NOW + timedelta(days=10)
    assert shared.expires_at == at + LIFETIMES.order  # before the window's end (day 10)


def test_another_organisation_never(database: Database) -> None:
    first = _account(database)
    stranger = _account(database)  # a new organisation that also owns loop.test
    assert stranger.org_id != first.org_id
    proven = _validate(database, _order(database, first, NAME, NOW), NOW)
    elsewhere = _order(database, stranger, NAME, NOW + timedelta(days=1), ORG_SCOPE)
    authz_id, status = _one(elsewhere)
    assert authz_id != proven and status == "pending"


def test_wildcard_and_non_wildcard_are_kept_apart(database: Database) -> None:
    account = _account(database)
    plain = _validate(database, _order(database, account, DOMAIN, NOW), NOW)
    wildcard_order = _order(database, account, f"*.{DOMAIN}", NOW + timedelta(hours=1))
    wildcard_authz, status = _one(wildcard_order)
    assert wildcard_authz != plain and status == "pending", "a name proves no wildcard"
    [authz] = wildcard_order.authorizations
    assert authz.wildcard and [c.type for c in authz.challenges] == ["dns-01"]
    wildcard = _validate(database, wildcard_order, NOW + timedelta(hours=1))

    at = NOW + timedelta(hours=2)
    assert _one(_order(database, account, DOMAIN, at)) == (plain, "valid")
    assert _one(_order(database, account, f"*.{DOMAIN}", at)) == (wildcard, "valid")


def _config(validation: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": {"base_url": "https://acme.test", "pki_base_url": "http://acme.test"},
        "endpoints": [{"name": "p", "type": "private", "ca": "private", "profiles": ["x"]}],
        "validation": validation,
    }


BEFORE_SC081 = datetime(2026, 3, 14, 23, 59, tzinfo=UTC)


def test_the_configuration_bounds_the_window_by_the_baseline_requirements() -> None:
    default = parse_config(_config({})).validation
    assert (default.authorization_reuse, default.reuse_scope) == (timedelta(days=30), "account")
    chosen = parse_config(
        _config({"authorization_reuse_days": 398, "authorization_reuse_scope": "organisation"}),
        now=BEFORE_SC081,
    ).validation
    assert (chosen.authorization_reuse, chosen.reuse_scope) == (
        timedelta(days=398),
        "organisation",
    )
    assert parse_config(
        _config({"authorization_reuse_days": 0})
    ).validation.authorization_reuse == (timedelta(0))
    for bad in ({"authorization_reuse_days": 399}, {"authorization_reuse_days": -1}):
        with pytest.raises(ConfigError, match="398"):
            parse_config(_config(bad), now=BEFORE_SC081)
    with pytest.raises(ConfigError, match="authorization_reuse_scope"):
        parse_config(_config({"authorization_reuse_scope": "everyone"}))


@pytest.mark.parametrize(
    ("loaded", "most"),
    [
        (BEFORE_SC081, 398),
        (datetime(2026, 3, 15, tzinfo=UTC), 200),
        (datetime(2027, 3, 14, tzinfo=UTC), 200),
        (datetime(2027, 3, 15, tzinfo=UTC), 100),
        (datetime(2029, 3, 15, tzinfo=UTC), 10),
    ],
)
def test_the_configuration_refuses_more_than_the_period_in_force(
    loaded: datetime, most: int
) -> None:
    """BR 4.2.1 as amended by SC-081: the bound is the one in force when the file is loaded."""
    fine = parse_config(_config({"authorization_reuse_days": most}), now=loaded)
    assert fine.validation.authorization_reuse == timedelta(days=most)
    with pytest.raises(ConfigError, match=rf"\[0, {most}\] .* in force on {loaded:%Y-%m-%d}"):
        parse_config(_config({"authorization_reuse_days": most + 0.5}), now=loaded)


def test_the_reuse_end_follows_the_schedule() -> None:
    day = timedelta(days=1)
    # Validated well before SC-081 took effect, seen before: usable until 2026-03-15 only
    # (by then it is older than the 200 days in force from that day).
    validated = datetime(2025, 6, 1, tzinfo=UTC)
    assert dcv_reuse_until(validated, 398 * day, datetime(2026, 3, 1, tzinfo=UTC)) == datetime(
        2026, 3, 15, tzinfo=UTC
    )
    # Young enough: the 200 days in force on 2026-03-15 still hold it.
    validated = datetime(2026, 1, 1, tzinfo=UTC)
    assert dcv_reuse_until(validated, 398 * day, datetime(2026, 2, 1, tzinfo=UTC)) == (
        validated + 200 * day
    )
    # The configured window, when shorter, decides.
    assert dcv_reuse_until(validated, 30 * day, datetime(2026, 2, 1, tzinfo=UTC)) == (
        validated + 30 * day
    )


def test_a_window_configured_under_a_longer_period_is_capped_at_issuance(
    database: Database,
) -> None:
    """Loaded when 100 days were allowed, the 398-day window (say, a file from 2025) does not
    outlive 2029-03-15, when the period becomes 10 days."""
    account = _account(database)
    proven_at = datetime(2029, 3, 1, tzinfo=UTC)
    long_window = Reuse(window=timedelta(days=398))
    proven = _validate(database, _order(database, account, NAME, proven_at, long_window), proven_at)

    before = datetime(2029, 3, 14, tzinfo=UTC)  # 13 days on, 100 in force: reused
    reused = _order(database, account, NAME, before, long_window)
    assert _one(reused) == (proven, "valid")
    # The order ends when the 10-day period takes effect: the proof is then too old.
    assert reused.expires_at == datetime(2029, 3, 15, tzinfo=UTC)

    after = datetime(2029, 3, 16, tzinfo=UTC)  # 15 days on, 10 in force: proven again
    authz_id, status = _one(_order(database, account, NAME, after, long_window))
    assert authz_id != proven and status == "pending"


def test_the_configuration_bounds_the_queue() -> None:
    queue = parse_config(
        _config({"max_concurrent": 4, "lease_seconds": 5, "poll_seconds": 0.5})
    ).validation
    assert (queue.max_concurrent, queue.lease, queue.poll_interval) == (
        4,
        timedelta(seconds=5),
        timedelta(seconds=0.5),
    )
    for bad in ({"max_concurrent": 0}, {"lease_seconds": 0}, {"poll_seconds": "1"}):
        with pytest.raises(ConfigError):
            parse_config(_config(bad))


def test_a_validated_authorization_comes_before_a_pending_one(database: Database) -> None:
    """With both at hand, the order is ready at once (as before the window existed)."""
    account = _account(database)
    proven = _validate(database, _order(database, account, NAME, NOW), NOW)
    no_reuse = _order(database, account, NAME, NOW + timedelta(minutes=1), Reuse(timedelta(0)))
    pending, status = _one(no_reuse)
    assert pending != proven and status == "pending"
    assert _one(_order(database, account, NAME, NOW + timedelta(minutes=2))) == (proven, "valid")
    # Out of the window, the pending one is returned rather than a third.
    late = _order(database, account, NAME, NOW + timedelta(days=11))
    assert _one(late) == (pending, "pending")
