"""Fixed-window counters for rate limits (the decisions are ``policy.ratelimits``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from acmefleet.store.schema import authorizations, rate_counters


def hits(conn: Connection, key: str, window_start: datetime) -> int:
    """How often ``key`` was counted in the window starting at ``window_start``."""
    found = conn.execute(
        select(rate_counters.c.hits).where(
            rate_counters.c.key == key, rate_counters.c.window_start == window_start
        )
    ).scalar_one_or_none()
    return int(found or 0)


def count(conn: Connection, key: str, window_start: datetime, by: int = 1) -> int:
    """Add ``by`` to the window's counter in one statement (an upsert, so concurrent
    writers never lose a hit) and return the new total."""
    dialect = conn.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    upsert = (
        insert(rate_counters)
        .values(key=key, window_start=window_start, hits=by)
        .on_conflict_do_update(
            index_elements=[rate_counters.c.key, rate_counters.c.window_start],
            set_={"hits": rate_counters.c.hits + by},
        )
        .returning(rate_counters.c.hits)
    )
    return int(conn.execute(upsert).scalar_one())


def pending_authorizations(conn: Connection, account_id: str, now: datetime) -> int:
    """The account's authorizations still pending (not expired)."""
    query = (
        select(func.count())
        .select_from(authorizations)
        .where(
            authorizations.c.account_id == account_id,
            authorizations.c.status == "pending",
            authorizations.c.expires_at > now,
        )
    )
    return int(conn.execute(query).scalar_one())


def prune(conn: Connection, before: datetime) -> int:
    """Forget windows that started before ``before`` (they can limit nothing any more)."""
    result = conn.execute(delete(rate_counters).where(rate_counters.c.window_start < before))
    return int(result.rowcount or 0)
