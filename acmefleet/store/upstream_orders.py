"""Relayed orders: the local orders a public endpoint hands to its upstream CA.

A queued row is work for any server process, claimed the way the validation queue's
challenges are (``store.validation_queue``): a compare-and-set UPDATE takes an unleased
row, or one whose lease ran out, for one owner until a time; the owner renews it while it
works and every write it makes afterwards is conditional on still holding it, so a process
that stalled past its lease cannot overwrite what the process that took over did.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update
from sqlalchemy.engine import Row

from acmefleet.models import RelayedOrder
from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import upstream_orders as table

_CLAIMABLE = or_(table.c.lease_until.is_(None), table.c.lease_until <= bindparam("p_now"))
_QUEUED = and_(table.c.state == "queued")
_DUE = Prepared(
    select(table)
    .where(_QUEUED, table.c.next_attempt_at <= bindparam("p_now"), _CLAIMABLE)
    .order_by(table.c.next_attempt_at, table.c.order_id)
    .limit(bindparam("p_limit"))
)
_NEXT_DUE = Prepared(
    select(table.c.next_attempt_at).where(_QUEUED).order_by(table.c.next_attempt_at).limit(1)
)
_LEASED = Prepared(select(table).where(_QUEUED, table.c.lease_until > bindparam("p_now")))
_CLAIM = Prepared(
    update(table)
    .where(table.c.order_id == bindparam("p_id"), _QUEUED, _CLAIMABLE)
    .values(lease_owner=bindparam("p_owner"), lease_until=bindparam("p_until"))
)
_TAKE_OVER = Prepared(
    update(table)
    .where(
        table.c.order_id == bindparam("p_id"),
        _QUEUED,
        table.c.lease_owner == bindparam("p_dead"),
    )
    .values(lease_owner=bindparam("p_owner"), lease_until=bindparam("p_until"))
)
_HELD = and_(
    table.c.order_id == bindparam("p_id"),
    _QUEUED,
    table.c.lease_owner == bindparam("p_owner"),
)
_RENEW = Prepared(update(table).where(_HELD).values(lease_until=bindparam("p_until")))
_RELEASE = Prepared(update(table).where(_HELD).values(lease_owner=None, lease_until=None))
_PLACED = Prepared(
    update(table)
    .where(_HELD, table.c.upstream_order_url.is_(None))
    .values(upstream_order_url=bindparam("p_url"), updated_at=bindparam("p_now"))
)
_FORGET_PLACED = Prepared(
    update(table).where(_HELD).values(upstream_order_url=None, updated_at=bindparam("p_now"))
)
_RESCHEDULE = Prepared(
    update(table)
    .where(_HELD)
    .values(
        attempts=table.c.attempts + 1,
        next_attempt_at=bindparam("p_next"),
        last_error=bindparam("p_error"),
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("p_now"),
    )
)
_FINISH = Prepared(
    update(table)
    .where(_HELD)
    .values(
        state=bindparam("p_state"),
        attempts=table.c.attempts + 1,
        last_error=bindparam("p_error"),
        certificate_url=bindparam("p_certificate_url"),
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("p_now"),
    )
)
_GET = Prepared(select(table).where(table.c.order_id == bindparam("p_id")))


def _relayed(row: Row[Any]) -> RelayedOrder:
    return RelayedOrder(
        order_id=row.order_id,
        upstream=row.upstream,
        csr=row.csr,
        state=row.state,
        upstream_order_url=row.upstream_order_url,
        certificate_url=row.certificate_url,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        give_up_at=row.give_up_at,
        last_error=row.last_error,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        created_at=row.created_at,
    )


def insert_relayed(conn: Connection, relayed: RelayedOrder) -> None:
    conn.execute(
        insert(table).values(
            order_id=relayed.order_id,
            upstream=relayed.upstream,
            csr=relayed.csr,
            state=relayed.state,
            upstream_order_url=relayed.upstream_order_url,
            certificate_url=relayed.certificate_url,
            attempts=relayed.attempts,
            next_attempt_at=relayed.next_attempt_at,
            give_up_at=relayed.give_up_at,
            last_error=relayed.last_error,
            created_at=relayed.created_at,
            updated_at=relayed.created_at,
        )
    )


def get_relayed(conn: Connection, order_id: str) -> RelayedOrder | None:
    row = _GET.first(conn, {"p_id": order_id})
    return None if row is None else _relayed(row)


def due(conn: Connection, now: datetime, limit: int) -> list[RelayedOrder]:
    """Up to ``limit`` queued orders whose next attempt is due and that nobody holds."""
    return [_relayed(row) for row in _DUE.rows(conn, {"p_now": now, "p_limit": limit})]


def next_due(conn: Connection) -> datetime | None:
    """When the earliest queued order's next attempt is due (None: nothing queued)."""
    value: datetime | None = _NEXT_DUE.scalar(conn, {})
    return value


def leased(conn: Connection, now: datetime) -> list[tuple[RelayedOrder, str]]:
    """Queued orders whose lease still stands, with its owner."""
    return [(_relayed(row), row.lease_owner) for row in _LEASED.rows(conn, {"p_now": now})]


def claim(conn: Connection, order_id: str, owner: str, now: datetime, until: datetime) -> bool:
    params = {"p_id": order_id, "p_owner": owner, "p_now": now, "p_until": until}
    return _CLAIM.run(conn, params) == 1


def take_over(
    conn: Connection, order_id: str, dead_owner: str, owner: str, until: datetime
) -> bool:
    params = {"p_id": order_id, "p_dead": dead_owner, "p_owner": owner, "p_until": until}
    return _TAKE_OVER.run(conn, params) == 1


def renew(conn: Connection, order_id: str, owner: str, until: datetime) -> bool:
    return _RENEW.run(conn, {"p_id": order_id, "p_owner": owner, "p_until": until}) == 1


def release(conn: Connection, order_ids: Iterable[str], owner: str) -> int:
    return sum(_RELEASE.run(conn, {"p_id": i, "p_owner": owner}) for i in order_ids)


def record_placed(conn: Connection, order_id: str, owner: str, url: str, now: datetime) -> bool:
    """The upstream order's URL, once, by the lease's holder."""
    params = {"p_id": order_id, "p_owner": owner, "p_url": url, "p_now": now}
    return _PLACED.run(conn, params) == 1


def forget_placed(conn: Connection, order_id: str, owner: str, now: datetime) -> bool:
    """Clear the upstream order's URL (the upstream has no such order any more)."""
    return _FORGET_PLACED.run(conn, {"p_id": order_id, "p_owner": owner, "p_now": now}) == 1


def reschedule(
    conn: Connection,
    order_id: str,
    owner: str,
    next_attempt_at: datetime,
    error: dict[str, Any],
    now: datetime,
) -> bool:
    """Count a failed attempt and give the order back, due again at ``next_attempt_at``."""
    params = {
        "p_id": order_id,
        "p_owner": owner,
        "p_next": next_attempt_at,
        "p_error": error,
        "p_now": now,
    }
    return _RESCHEDULE.run(conn, params) == 1


def finish(
    conn: Connection,
    order_id: str,
    owner: str,
    state: str,
    now: datetime,
    *,
    error: dict[str, Any] | None = None,
    certificate_url: str | None = None,
) -> bool:
    """End the relay (``valid`` or ``invalid``) if ``owner`` still holds it."""
    params = {
        "p_id": order_id,
        "p_owner": owner,
        "p_state": state,
        "p_error": error,
        "p_certificate_url": certificate_url,
        "p_now": now,
    }
    return _FINISH.run(conn, params) == 1
