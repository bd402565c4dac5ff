"""The order, authorization and challenge queries of acmefleet.store.orders on SQLite."""

from __future__ import annotations

import dataclasses

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


def test_reusable_authorization_prefers_valid_then_the_latest_expiry(
    db: Database, org_id: int, account_id: str
) -> None:
    with db.write() as conn:
        accounts.insert_account(conn, account_model(org_id, 2))
    candidates = [
        authorization_model("pending-late", account_id, expires_at=at(900)),
        authorization_model("valid-early", account_id, stored_status="valid", expires_at=at(200)),
        authorization_model("valid-late", account_id, stored_status="valid", expires_at=at(300)),
        # None of these may be reused:
        authorization_model("valid-expired", account_id, stored_status="valid", expires_at=NOW),
        authorization_model("invalid", account_id, stored_status="invalid", expires_at=at(990)),
        authorization_model("deactivated", account_id, stored_status="deactivated"),
        authorization_model("other-account", "acct-2", stored_status="valid", expires_at=at(999)),
        authorization_model("wildcard", account_id, stored_status="valid", wildcard=True),
        authorization_model("other-name", account_id, "example.com", stored_status="valid"),
        authorization_model(
            "ip",
            account_id,
            stored_status="valid",
            identifier=Identifier(type="ip", value=WWW.value),
        ),
    ]
    for authz in candidates:
        insert_authz(db, authz)

    def reusable(wildcard: bool = False) -> str | None:
        with db.read() as conn:
            found = orders.find_reusable_authorization(conn, account_id, WWW, wildcard, NOW)
        return found.id if found else None

    assert reusable() == "valid-late"
    assert reusable(wildcard=True) == "wildcard"
    with db.write() as conn:
        for authz_id in ("valid-late", "valid-early"):
            assert orders.set_authorization_status(
                conn, authz_id, expected="valid", status="revoked"
            )
    assert reusable() == "pending-late"
    with db.write() as conn:
        orders.set_authorization_status(conn, "pending-late", expected="pending", status="invalid")
    assert reusable() is None


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
