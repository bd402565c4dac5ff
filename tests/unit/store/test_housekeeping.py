"""Expired orders, orphaned authorizations and used nonces are deleted; nothing else."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import Connection, func, select

from acmefleet.clock import FixedClock
from acmefleet.models import Account, Authorization, Order
from acmefleet.server import housekeeping as server_housekeeping
from acmefleet.store import housekeeping
from acmefleet.store import nonces as nonce_store
from acmefleet.store import orders as order_store
from acmefleet.store.engine import Database
from acmefleet.store.schema import (
    authorizations,
    challenges,
    order_authorizations,
    orders,
    used_nonces,
)
from tests.unit import rows

DAY = timedelta(days=1)


def _order(conn: Connection, owner: Account, authz: Authorization, expires_in: timedelta) -> Order:
    return rows.order(conn, owner, authz, expires_at=rows.NOW + expires_in)


def _count(database: Database, table: object) -> int:
    with database.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_expired_rows_go_and_live_ones_stay(database: Database) -> None:
    with database.write() as conn:
        owner = rows.account(conn)
        old_authz = rows.authorization(conn, owner, expires_at=rows.NOW - 10 * DAY)
        _order(conn, owner, old_authz, -10 * DAY)  # expired long ago: goes with its authz
        shared = rows.authorization(conn, owner, "valid", expires_at=rows.NOW - 10 * DAY)
        live_order = _order(conn, owner, shared, DAY)  # still listed by a live order: stays
        fresh = rows.authorization(conn, owner, expires_at=rows.NOW + DAY)  # not expired
        recent = rows.authorization(conn, owner, expires_at=rows.NOW - DAY)  # within grace
        nonce_store.redeem(conn, "old-nonce", rows.NOW - DAY)
        nonce_store.redeem(conn, "live-nonce", rows.NOW + DAY)
    with database.write() as conn:
        pruned = housekeeping.prune(
            conn,
            now=rows.NOW,
            expired_before=rows.NOW - 7 * DAY,
            batch=100,
            counters_before=rows.NOW - 31 * DAY,
        )
    assert pruned == housekeeping.Pruned(orders=1, authorizations=1, nonces=1)
    with database.read() as conn:
        assert order_store.get_order(conn, live_order.id) is not None
        for kept in (shared, fresh, recent):
            assert order_store.get_authorization(conn, kept.id) is not None
        assert order_store.get_authorization(conn, old_authz.id) is None
        remaining = {r.nonce for r in conn.execute(select(used_nonces.c.nonce))}
    assert remaining == {"live-nonce"}
    assert _count(database, challenges) == 3  # one per remaining authorization


def test_a_backlog_is_pruned_in_batches(database: Database) -> None:
    """30,000 pending authorizations were possible before; any backlog drains in rounds."""
    backlog = server_housekeeping.BATCH * 2 + 17
    with database.write() as conn:
        owner = rows.account(conn)
        for n in range(backlog):
            authz = rows.authorization(
                conn, owner, value=f"n{n}.example.com", expires_at=rows.NOW - 30 * DAY
            )
            _order(conn, owner, authz, -30 * DAY)
    retention = server_housekeeping.Retention(keep_expired=7 * DAY, every=timedelta(minutes=10))
    pruned = asyncio.run(server_housekeeping.prune_all(database, FixedClock(rows.NOW), retention))
    assert pruned.orders == backlog and pruned.authorizations == backlog
    for table in (orders, authorizations, order_authorizations, challenges):
        assert _count(database, table) == 0
