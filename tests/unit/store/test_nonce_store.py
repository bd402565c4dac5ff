"""The nonce rows every replica shares (store.nonces), on a migrated SQLite database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from acmefleet.acme.nonces import load_or_create_nonce_key
from acmefleet.store import nonces as nonce_store
from acmefleet.store.engine import Database
from tests.unit.rows import NOW


def test_the_key_is_absent_until_stored_and_stored_once(database: Database) -> None:
    with database.write() as conn:
        assert nonce_store.get_key(conn) is None
        nonce_store.insert_key(conn, "a2V5")
    with database.read() as conn:
        assert nonce_store.get_key(conn) == "a2V5"
    with pytest.raises(IntegrityError), database.write() as conn:
        nonce_store.insert_key(conn, "b3RoZXI")
    with database.read() as conn:
        assert nonce_store.get_key(conn) == "a2V5"


def test_load_or_create_keeps_the_first_key(database: Database) -> None:
    with database.write() as conn:
        first = load_or_create_nonce_key(conn)
    with database.write() as conn:
        assert load_or_create_nonce_key(conn) == first
    assert len(first) == 32


def test_a_nonce_redeems_once(database: Database) -> None:
    with database.write() as conn:
        assert nonce_store.redeem(conn, "n1", NOW + timedelta(minutes=5))
    with database.write() as conn:
        assert not nonce_store.redeem(conn, "n1", NOW + timedelta(minutes=5))
    with database.write() as conn:
        assert nonce_store.redeem(conn, "n2", NOW + timedelta(minutes=5))


def test_prune_forgets_only_expired_nonces(database: Database) -> None:
    with database.write() as conn:
        nonce_store.redeem(conn, "old", NOW - timedelta(seconds=1))
        nonce_store.redeem(conn, "edge", NOW)
        nonce_store.redeem(conn, "fresh", NOW + timedelta(minutes=5))
    with database.write() as conn:
        assert nonce_store.prune(conn, NOW) == 1
    # A redemption that fails may spoil its transaction (PostgreSQL): one per transaction.
    for nonce, still_used in (("old", False), ("edge", True), ("fresh", True)):
        with database.write() as conn:
            assert nonce_store.redeem(conn, nonce, NOW + timedelta(minutes=5)) is not still_used
