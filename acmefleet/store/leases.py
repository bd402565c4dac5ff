"""Work queues in a table, shared by every process through leases.

A queued row is due once its ``next_attempt_at`` has come; a process takes it with a
compare-and-set UPDATE (no lease, or one that ran out, to its owner id until a time), renews
the lease while it works, and makes every later write conditional on still holding it (the
``held`` clause). The UPDATE's WHERE is the whole claim: SQLite's write lock, or PostgreSQL's
row lock and re-check under READ COMMITTED, lets exactly one claimer change the row. The
validation queue (``store.validation_queue``) is the same protocol on challenges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, bindparam, or_, select, update

from acmefleet.store.prepared import Prepared


class LeasedQueue:
    """The lease statements of ``table`` (columns ``next_attempt_at``, ``lease_owner``,
    ``lease_until``), its rows keyed by ``key`` and queued while ``queued`` holds."""

    def __init__(
        self,
        table: Table,
        key: str,
        queued: ColumnElement[bool],
        *,
        finish_sets: Sequence[str] = (),
    ) -> None:
        """``finish_sets``: more columns ``finish`` writes (from keyword arguments)."""
        columns = table.c
        row_id = columns[key]
        claimable = or_(columns.lease_until.is_(None), columns.lease_until <= bindparam("p_now"))
        #: This row, still queued, leased by ``p_owner``: the condition of every later write.
        self.held = and_(
            row_id == bindparam("p_id"), queued, columns.lease_owner == bindparam("p_owner")
        )
        self._due = Prepared(
            select(table)
            .where(queued, columns.next_attempt_at <= bindparam("p_now"), claimable)
            .order_by(columns.next_attempt_at, row_id)
            .limit(bindparam("p_limit"))
        )
        self._leased = Prepared(
            select(table).where(queued, columns.lease_until > bindparam("p_now"))
        )
        # Due and unleased at the claim itself: another process may have claimed, worked
        # and rescheduled the row since it was read.
        self._claim = Prepared(
            update(table)
            .where(
                row_id == bindparam("p_id"),
                queued,
                claimable,
                columns.next_attempt_at <= bindparam("p_now"),
            )
            .values(lease_owner=bindparam("p_owner"), lease_until=bindparam("p_until"))
        )
        self._take_over = Prepared(
            update(table)
            .where(row_id == bindparam("p_id"), queued, columns.lease_owner == bindparam("p_dead"))
            .values(lease_owner=bindparam("p_owner"), lease_until=bindparam("p_until"))
        )
        self._renew = Prepared(
            update(table).where(self.held).values(lease_until=bindparam("p_until"))
        )
        self._release = Prepared(
            update(table).where(self.held).values(lease_owner=None, lease_until=None)
        )
        # A failed attempt counted, the row given back and due again at ``p_next``.
        self._reschedule = Prepared(
            update(table)
            .where(self.held)
            .values(
                attempts=columns.attempts + 1,
                next_attempt_at=bindparam("p_next"),
                last_error=bindparam("p_error"),
                lease_owner=None,
                lease_until=None,
                updated_at=bindparam("p_now"),
            )
        )
        self._finish_sets = tuple(finish_sets)
        self._finish = Prepared(
            update(table)
            .where(self.held)
            .values(
                state=bindparam("p_state"),
                attempts=columns.attempts + 1,
                last_error=bindparam("p_error"),
                lease_owner=None,
                lease_until=None,
                updated_at=bindparam("p_now"),
                **{name: bindparam(f"p_{name}") for name in self._finish_sets},
            )
        )

    def due(self, conn: Connection, now: datetime, limit: int) -> list[Any]:
        """Up to ``limit`` queued rows whose next attempt is due and that nobody holds."""
        return self._due.rows(conn, {"p_now": now, "p_limit": limit})

    def leased(self, conn: Connection, now: datetime) -> list[Any]:
        """Queued rows whose lease still stands."""
        return self._leased.rows(conn, {"p_now": now})

    def claim(
        self, conn: Connection, row_id: str, owner: str, now: datetime, until: datetime
    ) -> bool:
        params = {"p_id": row_id, "p_owner": owner, "p_now": now, "p_until": until}
        return self._claim.run(conn, params) == 1

    def take_over(
        self, conn: Connection, row_id: str, dead_owner: str, owner: str, until: datetime
    ) -> bool:
        """Claim a row from ``dead_owner`` (known to have died) before its lease runs out."""
        params = {"p_id": row_id, "p_dead": dead_owner, "p_owner": owner, "p_until": until}
        return self._take_over.run(conn, params) == 1

    def renew(self, conn: Connection, row_id: str, owner: str, until: datetime) -> bool:
        return self._renew.run(conn, {"p_id": row_id, "p_owner": owner, "p_until": until}) == 1

    def release(self, conn: Connection, row_ids: Iterable[str], owner: str) -> int:
        return sum(self._release.run(conn, {"p_id": i, "p_owner": owner}) for i in row_ids)

    def reschedule(
        self,
        conn: Connection,
        row_id: str,
        owner: str,
        next_attempt_at: datetime,
        error: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Count a failed attempt and give the row back, due again at ``next_attempt_at``."""
        params = {
            "p_id": row_id,
            "p_owner": owner,
            "p_next": next_attempt_at,
            "p_error": error,
            "p_now": now,
        }
        return self._reschedule.run(conn, params) == 1

    def finish(
        self,
        conn: Connection,
        row_id: str,
        owner: str,
        state: str,
        now: datetime,
        *,
        error: dict[str, Any] | None = None,
        **sets: Any,
    ) -> bool:
        """End the row in ``state`` if ``owner`` still holds it (``sets``: ``finish_sets``)."""
        params = {
            "p_id": row_id,
            "p_owner": owner,
            "p_state": state,
            "p_error": error,
            "p_now": now,
            **{f"p_{name}": sets.get(name) for name in self._finish_sets},
        }
        return self._finish.run(conn, params) == 1
