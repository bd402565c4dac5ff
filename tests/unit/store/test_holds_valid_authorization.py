"""The store question revocation asks per certificate name (RFC 8555 §7.6)."""

from __future__ import annotations

from datetime import timedelta

from acmefleet.store.engine import Database
from acmefleet.store.orders import holds_valid_authorization
from tests.unit import rows
from tests.unit.rows import NOW


def test_only_an_unexpired_valid_authorization_of_the_account_counts(
    database: Database,
) -> None:
    with database.write() as conn:
        owner, other = rows.account(conn), rows.account(conn)
        rows.authorization(conn, owner, "valid", value="valid.example.com")
        rows.authorization(conn, owner, "pending", value="pending.example.com")
        rows.authorization(conn, owner, "deactivated", value="gone.example.com")
        rows.authorization(
            conn, owner, "valid", value="old.example.com", expires_at=NOW - timedelta(seconds=1)
        )
        rows.authorization(conn, other, "valid", value="other.example.com")
    with database.read() as conn:
        assert holds_valid_authorization(conn, owner.id, "valid.example.com", NOW)
        for value in (
            "pending.example.com",
            "gone.example.com",
            "old.example.com",
            "other.example.com",
        ):
            assert not holds_valid_authorization(conn, owner.id, value, NOW), value
        assert holds_valid_authorization(conn, other.id, "other.example.com", NOW)
