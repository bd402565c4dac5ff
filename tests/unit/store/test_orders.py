"""The order, authorization and challenge queries of acmefleet.store.orders on SQLite."""

from __future__ import annotations

import dataclasses
from typing import Any

from acmefleet.identifiers import Identifier
from acmefleet.models import Authorization, Challenge
from acmefleet.store import accounts, orders
from acmefleet.store.engine import Database
from tests.unit.store.builders import account_model, at, authorization_model, order_model

NOW = at(100)
WWW = Identifier(type="dns", value="www.example.com")


def insert_authz(db: Database, authz: Authorization) -> None:
    with db.write() as conn:
        orders.insert_authorization(conn, authz, at(1))


def test_unknown_ids_read_as_none(db: Database) -> None:
    with db.read() as conn:
        assert orders.get_order(conn, "nope") is None
        assert orders.get_authorization(conn, "nope") is None
        assert orders.get_challenge(conn, "nope") is None


def test_an_authorization_reads_its_own_challenges_sorted_by_type(
    db: Database, account_id: str
) -> None:
    first = authorization_model("authz-1", account_id)
    dns = Challenge(
        id="authz-1-dns",
        authz_id="authz-1",
        type="dns-01",
        token="token-dns",
        status="pending",
        validated_at=None,
        error=None,
    )
    first = dataclasses.replace(first, challenges=(*first.challenges, dns))
    insert_authz(db, first)
    insert_authz(db, authorization_model("authz-2", account_id))
    with db.read() as conn:
        got = orders.get_authorization(conn, "authz-1")
    assert got is not None
    assert [c.id for c in got.challenges] == ["authz-1-dns", "authz-1-http"]


def _validated(authz_id: str, account_id: str, proven: int, **changes: Any) -> Authorization:
    """A valid authorization whose http-01 challenge was validated at ``at(proven)``."""
    authz = authorization_model(authz_id, account_id, **{"stored_status": "valid", **changes})
    [challenge] = authz.challenges
    proven_challenge = dataclasses.replace(challenge, status="valid", validated_at=at(proven))
    return dataclasses.replace(authz, challenges=(proven_challenge,))


def test_reusable_authorizations_by_state_name_age_and_owner(
    db: Database, org_id: int, account_id: str
) -> None:
    with db.write() as conn:
        accounts.insert_account(conn, account_model(org_id, 2))
        accounts.insert_account(conn, account_model(org_id - 1, 3))  # organisation "other"
    candidates = [
        authorization_model("pending-early", account_id, expires_at=at(800)),
        authorization_model("pending-late", account_id, expires_at=at(900)),
        _validated("valid-old", account_id, 10, expires_at=at(990)),
        _validated("valid-new", account_id, 60, expires_at=at(300)),
        # None of these may be reused by acct-1 itself:
        _validated("valid-expired", account_id, 90, expires_at=NOW),
        authorization_model("invalid", account_id, stored_status="invalid", expires_at=at(990)),
        _validated("deactivated", account_id, 95, stored_status="deactivated"),
        _validated("other-account", "acct-2", 99, expires_at=at(999)),
        _validated("other-org", "acct-3", 99, expires_at=at(999)),
        _validated("wildcard", account_id, 50, wildcard=True),
        _validated("other-name", account_id, 99, name="example.com"),
        _validated("ip", account_id, 99, identifier=Identifier(type="ip", value=WWW.value)),
    ]
    for authz in candidates:
        insert_authz(db, authz)

    def validated(since: int, wildcard: bool = False, org: int | None = None) -> str | None:
        with db.read() as conn:
            found = orders.find_validated_authorization(
                conn,
                WWW,
                wildcard,
                now=NOW,
                validated_since=at(since),
                account_id=account_id,
                org_id=org,
                endpoint=None if org is None else "private",
            )
        return f"{found[0].id}@{found[1]:%H:%M}" if found else None

    def pending() -> str | None:
        with db.read() as conn:
            found = orders.find_pending_authorization(conn, account_id, WWW, False, NOW)
        return found.id if found else None

    def proven(minutes: int) -> str:
        return f"{at(minutes):%H:%M}"

    assert validated(0) == f"valid-new@{proven(60)}"
    assert validated(60) == f"valid-new@{proven(60)}"
    assert validated(61) is None  # validated too long ago
    assert validated(0, wildcard=True) == f"wildcard@{proven(50)}"
    assert validated(0, org=org_id) == f"other-account@{proven(99)}", "the organisation's newest"
    assert validated(100, org=org_id) is None
    assert pending() == "pending-late"
    with db.write() as conn:
        orders.set_authorization_status(conn, "pending-late", expected="pending", status="invalid")
        orders.set_authorization_status(conn, "pending-early", expected="pending", status="valid")
    assert pending() is None


def test_state_changes_happen_only_from_the_expected_state(db: Database, account_id: str) -> None:
    authz = authorization_model("authz-1", account_id)
    insert_authz(db, authz)
    with db.write() as conn:
        orders.insert_order(conn, order_model("order-1", account_id, (authz,)), at(2))
        assert not orders.set_challenge_state(
            conn, "authz-1-http", expected="processing", status="valid", validated_at=at(3)
        )
        assert not orders.set_authorization_status(
            conn, "authz-1", expected="valid", status="deactivated"
        )
        assert not orders.set_finalization(
            conn, "order-1", expected="processing", finalization="valid", certificate_id="c"
        )
    with db.read() as conn:
        assert orders.get_challenge(conn, "authz-1-http") == authz.challenges[0]
        assert orders.get_authorization(conn, "authz-1") == authz
        order = orders.get_order(conn, "order-1")
        assert order is not None and order.finalization == "none" and order.certificate_id is None
    with db.write() as conn:
        assert orders.set_challenge_state(
            conn, "authz-1-http", expected="pending", status="processing"
        )
        assert orders.set_authorization_status(conn, "authz-1", expected="pending", status="valid")
        assert orders.set_finalization(conn, "order-1", expected="none", finalization="processing")
        # The same move again finds the state changed under it.
        assert not orders.set_finalization(
            conn, "order-1", expected="none", finalization="processing"
        )
    with db.read() as conn:
        challenge = orders.get_challenge(conn, "authz-1-http")
        got = orders.get_authorization(conn, "authz-1")
        order = orders.get_order(conn, "order-1")
    assert challenge is not None and challenge.status == "processing"
    assert got is not None and got.stored_status == "valid"
    assert order is not None and order.finalization == "processing"


def test_order_ids_page_in_creation_order(db: Database, org_id: int, account_id: str) -> None:
    with db.write() as conn:
        accounts.insert_account(conn, account_model(org_id, 2))
    created = {"o-c": at(1), "o-a": at(2), "o-b": at(2), "o-d": at(3)}  # o-a, o-b tie: by id
    for number, (order_id, created_at) in enumerate(created.items()):
        authz = authorization_model(f"authz-{number}", account_id)
        insert_authz(db, authz)
        with db.write() as conn:
            orders.insert_order(conn, order_model(order_id, account_id, (authz,)), created_at)
    stranger = authorization_model("authz-x", "acct-2")
    insert_authz(db, stranger)
    with db.write() as conn:
        orders.insert_order(conn, order_model("o-x", "acct-2", (stranger,)), at(2))

    def page(after: str | None, limit: int = 2) -> list[str]:
        with db.read() as conn:
            return orders.list_order_ids(conn, account_id, after=after, limit=limit)

    assert page(None) == ["o-c", "o-a"]
    assert page("o-a") == ["o-b", "o-d"]
    assert page("o-d") == []
    assert page(None, limit=10) == ["o-c", "o-a", "o-b", "o-d"]
    assert page("unknown", limit=10) == ["o-c", "o-a", "o-b", "o-d"]
    with db.read() as conn:
        assert orders.list_order_ids(conn, "acct-2", after=None, limit=10) == ["o-x"]
