"""Deleting what the protocol no longer needs, so tables stay bounded.

Expired orders, authorizations no remaining order refers to, and used nonces past their
lifetime. Each call deletes at most ``batch`` rows of a kind, so a transaction stays short
however much has piled up; the server repeats until a call finds nothing. Every statement
is idempotent: replicas running it at once only race to delete the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, exists, select

from acmefleet.store import nonces, ratelimits
from acmefleet.store.schema import (
    authorizations,
    challenges,
    order_authorizations,
    orders,
    upstream_orders,
)


@dataclass(frozen=True)
class Pruned:
    orders: int = 0
    authorizations: int = 0
    nonces: int = 0
    counters: int = 0

    @property
    def total(self) -> int:
        return self.orders + self.authorizations + self.nonces + self.counters


def prune_orders(conn: Connection, expired_before: datetime, batch: int) -> int:
    """Orders that expired before ``expired_before`` (their certificates stay)."""
    ids = [
        row.id
        for row in conn.execute(
            select(orders.c.id)
            .where(
                orders.c.expires_at < expired_before,
                # Not while its relay is still at work (retry_for may outlast keep_expired).
                ~exists().where(
                    upstream_orders.c.order_id == orders.c.id,
                    upstream_orders.c.state == "queued",
                ),
            )
            .limit(batch)
        )
    ]
    if not ids:
        return 0
    conn.execute(delete(order_authorizations).where(order_authorizations.c.order_id.in_(ids)))
    # A relay gives up long before (retry_for_seconds is at most 7 days; an order lives a
    # week and is kept 7 days more): what is left of it is history.
    conn.execute(delete(upstream_orders).where(upstream_orders.c.order_id.in_(ids)))
    conn.execute(delete(orders).where(orders.c.id.in_(ids)))
    return len(ids)


def prune_authorizations(conn: Connection, expired_before: datetime, batch: int) -> int:
    """Authorizations expired before ``expired_before`` that no order lists any more."""
    still_listed = exists().where(order_authorizations.c.authz_id == authorizations.c.id)
    ids = [
        row.id
        for row in conn.execute(
            select(authorizations.c.id)
            .where(authorizations.c.expires_at < expired_before, ~still_listed)
            .limit(batch)
        )
    ]
    if not ids:
        return 0
    conn.execute(delete(challenges).where(challenges.c.authz_id.in_(ids)))
    conn.execute(delete(authorizations).where(authorizations.c.id.in_(ids)))
    return len(ids)


def prune(
    conn: Connection,
    *,
    now: datetime,
    expired_before: datetime,
    batch: int,
    counters_before: datetime,
) -> Pruned:
    """One round of every kind; orders first, which frees their authorizations."""
    return Pruned(
        orders=prune_orders(conn, expired_before, batch),
        authorizations=prune_authorizations(conn, expired_before, batch),
        nonces=nonces.prune(conn, now),
        counters=ratelimits.prune(conn, counters_before),
    )
