"""ACME account queries of acmefleet.store.accounts on SQLite."""

from __future__ import annotations

import dataclasses

from acmefleet.store import accounts
from acmefleet.store.engine import Database
from tests.unit.store.builders import account_model, at


def test_lookups_by_id_and_by_endpoint_and_thumbprint(db: Database, org_id: int) -> None:
    first = account_model(org_id, 1)
    # The same key on another endpoint is another account.
    second = account_model(org_id, 2, endpoint="public", thumbprint=first.thumbprint)
    with db.write() as conn:
        accounts.insert_account(conn, first)
        accounts.insert_account(conn, second)
    with db.read() as conn:
        assert accounts.get_account(conn, "acct-2") == second
        assert accounts.get_account(conn, "acct-3") is None
        assert accounts.find_by_thumbprint(conn, "private", first.thumbprint) == first
        assert accounts.find_by_thumbprint(conn, "public", first.thumbprint) == second
        assert accounts.find_by_thumbprint(conn, "private", "thumb-2") is None


def test_listed_in_creation_order_and_updated_in_place(db: Database, org_id: int) -> None:
    with db.write() as conn:
        for number, created in ((1, 9), (2, 1), (3, 5)):
            accounts.insert_account(conn, account_model(org_id, number, created_at=at(created)))
        accounts.update_account(conn, "acct-3", contact=["mailto:new@example.com"])
    with db.read() as conn:
        listed = accounts.list_accounts(conn)
    assert [a.id for a in listed] == ["acct-2", "acct-3", "acct-1"]
    assert listed[1] == dataclasses.replace(
        account_model(org_id, 3, created_at=at(5)), contact=["mailto:new@example.com"]
    )
