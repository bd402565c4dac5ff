"""The validation queue: processing challenges, claimed by one process at a time.

A ``processing`` challenge is a queued validation. A process takes one with a compare-and-set
UPDATE (no lease, or a lease that has run out, to its own owner id and a new expiry) and
keeps renewing the lease while the validator runs. The UPDATE's WHERE clause is the whole
claim: on SQLite the write transaction holds the database's write lock; on PostgreSQL (READ
COMMITTED) a second claimer waits on the row, re-evaluates the condition against the
committed lease and updates nothing. Either way exactly one claimer sees one row changed, so
no ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL only) is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from acmefleet.models import Challenge
from acmefleet.store.orders import challenge_of_row
from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import challenges

_CLAIMABLE = or_(challenges.c.lease_until.is_(None), challenges.c.lease_until <= bindparam("p_now"))
_QUEUED = Prepared(
    select(challenges)
    .where(challenges.c.status == "processing", _CLAIMABLE)
    .order_by(challenges.c.processing_since, challenges.c.id)
    .limit(bindparam("p_limit"))
)
_CLAIM = Prepared(
    update(challenges)
    .where(challenges.c.id == bindparam("p_id"), challenges.c.status == "processing", _CLAIMABLE)
    .values(lease_owner=bindparam("p_owner"), lease_until=bindparam("p_until"))
)
_LEASED = Prepared(
    select(challenges)
    .where(challenges.c.status == "processing", challenges.c.lease_until > bindparam("p_now"))
    .order_by(challenges.c.processing_since, challenges.c.id)
)
_TAKE_OVER = Prepared(
    update(challenges)
    .where(
        challenges.c.id == bindparam("p_id"),
        challenges.c.status == "processing",
        challenges.c.lease_owner == bindparam("p_dead"),
    )
    .values(lease_owner=bindparam("p_owner"), lease_until=bindparam("p_until"))
)
_HELD = and_(
    challenges.c.id == bindparam("p_id"),
    challenges.c.status == "processing",
    challenges.c.lease_owner == bindparam("p_owner"),
)
_RENEW = Prepared(update(challenges).where(_HELD).values(lease_until=bindparam("p_until")))
_RELEASE = Prepared(update(challenges).where(_HELD).values(lease_owner=None, lease_until=None))


def queued(conn: Connection, now: datetime, limit: int) -> list[Challenge]:
    """Up to ``limit`` validations nobody holds (oldest request first)."""
    rows = _QUEUED.rows(conn, {"p_now": now, "p_limit": limit})
    return [challenge_of_row(row) for row in rows]


def claim(conn: Connection, challenge_id: str, owner: str, now: datetime, until: datetime) -> bool:
    """Take the validation for ``owner`` until ``until``; False if another holds it or it
    is no longer processing."""
    params = {"p_id": challenge_id, "p_owner": owner, "p_now": now, "p_until": until}
    return _CLAIM.run(conn, params) == 1


def leased(conn: Connection, now: datetime) -> list[tuple[Challenge, str]]:
    """Every validation whose lease still stands, with its owner."""
    rows = _LEASED.rows(conn, {"p_now": now})
    return [(challenge_of_row(row), row.lease_owner) for row in rows]


def take_over(
    conn: Connection, challenge_id: str, dead_owner: str, owner: str, until: datetime
) -> bool:
    """Claim a validation from ``dead_owner`` (known to have died) before its lease runs
    out; False if it changed hands or ended meanwhile."""
    params = {"p_id": challenge_id, "p_dead": dead_owner, "p_owner": owner, "p_until": until}
    return _TAKE_OVER.run(conn, params) == 1


def renew(conn: Connection, challenge_id: str, owner: str, until: datetime) -> bool:
    """Extend ``owner``'s lease; False once the challenge has an outcome or another process
    claimed it (the lease had run out)."""
    params = {"p_id": challenge_id, "p_owner": owner, "p_until": until}
    return _RENEW.run(conn, params) == 1


def release(conn: Connection, challenge_ids: Iterable[str], owner: str) -> int:
    """Give back ``owner``'s leases that still stand (the validations stay queued)."""
    released = 0
    for challenge_id in challenge_ids:
        params = {"p_id": challenge_id, "p_owner": owner}
        released += _RELEASE.run(conn, params)
    return released


def lease_of(conn: Connection, challenge_id: str) -> tuple[str | None, datetime | None]:
    """(owner, until) of a challenge's lease, for tests and diagnostics."""
    row = conn.execute(
        select(challenges.c.lease_owner, challenges.c.lease_until).where(
            challenges.c.id == challenge_id
        )
    ).one()
    return row.lease_owner, row.lease_until
