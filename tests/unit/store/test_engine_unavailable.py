"""``Database.write`` when PostgreSQL cuts the connection in the middle of a transaction (a
restart's fast shutdown, an administrator's ``pg_terminate_backend``): the caller gets
StoreUnavailable (a 503 with Retry-After), not an error of the clean-up over the real one."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from acmefleet.errors import StoreUnavailable
from acmefleet.store import engine
from acmefleet.store.engine import open_database, sqlite_url
from acmefleet.store.migrate import upgrade
from tests.support.postgres import PostgresServer
from tests.unit.conftest import TEMPLATE


def test_a_connection_cut_mid_transaction_is_unavailable_and_the_next_one_works(
    postgres_template: PostgresServer,
) -> None:
    url = postgres_template.create_database("cut_mid_transaction", template=TEMPLATE)
    db = open_database(url)
    try:
        with pytest.raises(StoreUnavailable), db.write() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            # Waits (up to 10 s) until the backend is gone: the next statement meets it cut.
            [(done,)] = postgres_template.execute(f"SELECT pg_terminate_backend({int(pid)}, 10000)")
            assert done is True
            conn.execute(text("SELECT 1"))
        with db.write() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()
        postgres_template.drop_database("cut_mid_transaction")


def _black_hole(port: int, on: bool) -> None:
    """Drop every packet to ``port`` on this machine (a database that vanished without a
    word: a failover's old primary, a cut cable), or stop dropping them."""
    table = f"acmefleet_black_hole_{port}"
    rules = (
        f"table inet {table} {{\n  chain out {{\n"
        "    type filter hook output priority 0; policy accept;\n"
        f"    tcp dport {port} drop\n  }}\n}}\n"
        if on
        else f"delete table inet {table}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, capture_output=True)


@pytest.mark.timeout(60)
def test_a_database_in_a_black_hole_is_unavailable_not_a_hang(
    postgres_template: PostgresServer,
) -> None:
    """Pooled connections and new ones to a database whose packets vanish: the pool's ping
    is never acknowledged (tcp_user_timeout ends it, not the kernel's ~15 min of retries),
    the reconnect never answered (connect_timeout): StoreUnavailable, then healed."""
    url = postgres_template.create_database("black_hole", template=TEMPLATE)
    # Short limits for the test; the defaults (15 s, [database] connect_timeout) act alike.
    db = open_database(
        f"{url}&tcp_user_timeout=1500".replace("connect_timeout=5", "connect_timeout=2")
    )
    try:
        with db.read() as conn:  # a pooled connection, idle now
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        _black_hole(postgres_template.port, on=True)
        try:
            with pytest.raises(StoreUnavailable), db.read() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            _black_hole(postgres_template.port, on=False)
        with db.read() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()
        postgres_template.drop_database("black_hole")


def test_postgresql_connections_bound_unacknowledged_sends() -> None:
    from acmefleet.config import DatabaseConfig
    from acmefleet.store.engine import TCP_USER_TIMEOUT_MS, _postgres_connect_args

    args = _postgres_connect_args("postgresql+psycopg://u@h/db", DatabaseConfig())
    assert args["tcp_user_timeout"] == TCP_USER_TIMEOUT_MS
    given = _postgres_connect_args(
        "postgresql+psycopg://u@h/db?tcp_user_timeout=9", DatabaseConfig()
    )
    assert "tcp_user_timeout" not in given  # the URL's own value wins


def test_a_sqlite_write_lock_held_past_busy_timeout_is_unavailable_then_heals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 200)
    db = open_database(sqlite_url(tmp_path))
    upgrade(db)
    holder = sqlite3.connect(tmp_path / "acmefleet.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's writer, stuck
        with pytest.raises(StoreUnavailable, match="locked"), db.write() as conn:
            conn.execute(text("SELECT 1"))
        holder.execute("ROLLBACK")
        with db.write() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        holder.close()
        db.dispose()
