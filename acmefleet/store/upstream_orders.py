"""Relayed orders: the local orders a public endpoint hands to its upstream CA.

A queued row is work for any server process, claimed the way the validation queue's
challenges are (``store.validation_queue``): a compare-and-set UPDATE takes an unleased
row, or one whose lease ran out, for one owner until a time; the owner renews it while it
works and every write it makes afterwards is conditional on still holding it, so a process
that stalled past its lease cannot overwrite what the process that took over did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Row

from acmefleet.models import RelayedOrder
from acmefleet.store.leases import LeasedQueue
from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import accounts, orders
from acmefleet.store.schema import upstream_orders as table

_QUEUE = LeasedQueue(table, "order_id", table.c.state == "queued", finish_sets=("certificate_url",))
_HELD = _QUEUE.held
_PLACED = Prepared(
    update(table)
    .where(_HELD, table.c.upstream_order_url.is_(None))
    .values(upstream_order_url=bindparam("p_url"), updated_at=bindparam("p_now"))
)
_FORGET_PLACED = Prepared(
    update(table).where(_HELD).values(upstream_order_url=None, updated_at=bindparam("p_now"))
)

# Fair shares between organisations: every organisation's relayed orders go through the one
# upstream account and its rate limits, so FIFO would let one organisation's mass renewal
# (thousands queued first) starve everyone else's. Candidates come by turn instead: a row's
# rank among its organisation's due rows, plus the rows that organisation already has in
# flight (leased by any process), so an organisation with none goes before one with some.
_NOW: BindParameter[datetime] = bindparam("p_now")
_QUEUED = table.c.state == "queued"
_ORG = accounts.c.org_id
_WITH_ORG = table.join(orders, orders.c.id == table.c.order_id).join(
    accounts, accounts.c.id == orders.c.account_id
)
_IN_FLIGHT = (
    select(_ORG.label("org_id"), func.count().label("leased"))
    .select_from(_WITH_ORG)
    .where(_QUEUED, table.c.lease_until > _NOW)
    .group_by(_ORG)
    .subquery("in_flight")
)
_RANKED = (
    select(
        table,
        _ORG.label("org_id"),
        func.row_number()
        .over(partition_by=_ORG, order_by=(table.c.next_attempt_at, table.c.order_id))
        .label("org_rank"),
    )
    .select_from(_WITH_ORG)
    .where(
        _QUEUED,
        table.c.next_attempt_at <= _NOW,
        or_(table.c.lease_until.is_(None), table.c.lease_until <= _NOW),
    )
    .subquery("ranked")
)
_DUE = Prepared(
    select(*(_RANKED.c[column.name] for column in table.c))
    .select_from(_RANKED.outerjoin(_IN_FLIGHT, _IN_FLIGHT.c.org_id == _RANKED.c.org_id))
    .order_by(
        _RANKED.c.org_rank + func.coalesce(_IN_FLIGHT.c.leased, 0),
        _RANKED.c.next_attempt_at,
        _RANKED.c.order_id,
    )
    .limit(bindparam("p_limit"))
)
_GET = Prepared(select(table).where(table.c.order_id == bindparam("p_id")))
_HOLDER = Prepared(
    select(table.c.order_id).where(table.c.upstream_order_url == bindparam("p_url")).limit(1)
)


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


def holder_of(conn: Connection, upstream_order_url: str) -> str | None:
    """The local order an upstream order was recorded for, if any."""
    value: str | None = _HOLDER.scalar(conn, {"p_url": upstream_order_url})
    return value


def due(conn: Connection, now: datetime, limit: int) -> list[RelayedOrder]:
    """Up to ``limit`` queued orders whose next attempt is due and that nobody holds, each
    organisation's in turn (``_DUE``): not first come, first served."""
    return [_relayed(row) for row in _DUE.rows(conn, {"p_now": now, "p_limit": limit})]


def leased(conn: Connection, now: datetime) -> list[tuple[RelayedOrder, str]]:
    """Queued orders whose lease still stands, with its owner."""
    return [(_relayed(row), row.lease_owner) for row in _QUEUE.leased(conn, now)]


claim = _QUEUE.claim
take_over = _QUEUE.take_over
renew = _QUEUE.renew
release = _QUEUE.release


def record_placed(conn: Connection, order_id: str, owner: str, url: str, now: datetime) -> bool:
    """The upstream order's URL, once, by the lease's holder."""
    params = {"p_id": order_id, "p_owner": owner, "p_url": url, "p_now": now}
    return _PLACED.run(conn, params) == 1


def forget_placed(conn: Connection, order_id: str, owner: str, now: datetime) -> bool:
    """Clear the upstream order's URL (the upstream has no such order any more)."""
    return _FORGET_PLACED.run(conn, {"p_id": order_id, "p_owner": owner, "p_now": now}) == 1


reschedule = _QUEUE.reschedule
finish = _QUEUE.finish
