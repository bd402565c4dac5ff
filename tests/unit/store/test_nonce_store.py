"""The nonce rows every replica shares (store.nonces), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

from acmefleet.acme.nonces import load_or_create_nonce_key
from acmefleet.store import nonces as nonce_store
from acmefleet.store.engine import Database, open_database
from tests.unit.rows import NOW


def test_the_key_is_absent_until_stored_and_stored_once(database: Database) -> None:
    with database.write() as conn:
        assert nonce_store.get_key(conn) is None
        assert nonce_store.insert_key(conn, "a2V5") == "a2V5"
    with database.read() as conn:
        assert nonce_store.get_key(conn) == "a2V5"
    # A replica that lost the race to store its own key gets the winner's.
    with database.write() as conn:
        assert nonce_store.insert_key(conn, "b3RoZXI") == "a2V5"
    with database.read() as conn:
        assert nonce_store.get_key(conn) == "a2V5"


def test_replicas_starting_together_on_a_fresh_database_agree_on_one_key(
    database: Database,
) -> None:
    url = database.writer.url.render_as_string(hide_password=False)
    engines = [open_database(url) for _ in range(6)]
    barrier = threading.Barrier(len(engines))
    keys: list[bytes] = []

    def start(replica: Database) -> None:
        barrier.wait()
        with replica.write() as conn:
            keys.append(load_or_create_nonce_key(conn))

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    assert len(keys) == len(engines) and len(set(keys)) == 1


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
