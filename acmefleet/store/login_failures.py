"""Failed console sign-ins: the rows that let every worker throttle on the same count."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select

from acmefleet.store.schema import console_login_failures as failures

_RECORD = insert(failures)
_PRUNE = delete(failures).where(failures.c.at <= bindparam("p_before"))
_CLEAR = delete(failures).where(failures.c.source == bindparam("p_source"))
_RECENT = (
    select(failures.c.at)
    .where(failures.c.at > bindparam("p_since"))
    .order_by(failures.c.at.desc())
    .limit(bindparam("p_limit"))
)
_RECENT_FROM = _RECENT.where(failures.c.source == bindparam("p_source"))


def record(conn: Connection, *, source: str, at: datetime) -> None:
    conn.execute(_RECORD, {"source": source, "at": at})


def recent(
    conn: Connection, *, since: datetime, limit: int, source: str | None = None
) -> list[datetime]:
    """When the latest ``limit`` failures after ``since`` happened (from ``source`` if
    given, else from anywhere), newest first."""
    if source is None:
        rows = conn.execute(_RECENT, {"p_since": since, "p_limit": limit})
    else:
        rows = conn.execute(_RECENT_FROM, {"p_since": since, "p_limit": limit, "p_source": source})
    return list(rows.scalars())


def prune(conn: Connection, before: datetime) -> int:
    """Forget failures at or before ``before`` (out of every window that still counts)."""
    return conn.execute(_PRUNE, {"p_before": before}).rowcount


def clear(conn: Connection, source: str) -> None:
    """Forget the failures of ``source`` (after it signed in)."""
    conn.execute(_CLEAR, {"p_source": source})
