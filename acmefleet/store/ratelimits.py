"""Fixed-window counters for rate limits (the decisions are ``policy.ratelimits``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import authorizations, rate_counters

_HITS = Prepared(
    select(rate_counters.c.hits).where(
        rate_counters.c.key == bindparam("p_key"),
        rate_counters.c.window_start == bindparam("p_start"),
    )
)
_PENDING = Prepared(
    select(func.count())
    .select_from(authorizations)
    .where(
        authorizations.c.account_id == bindparam("p_account"),
        authorizations.c.status == "pending",
        authorizations.c.expires_at > bindparam("p_now"),
    )
)
# One upsert per dialect (each has its own ON CONFLICT construct): concurrent writers never
# lose a hit, and the new total comes back in the same statement.
_COUNT = {
    dialect: Prepared(
        insert(rate_counters)
        .values(key=bindparam("p_key"), window_start=bindparam("p_start"), hits=bindparam("p_by"))
        .on_conflict_do_update(
            index_elements=[rate_counters.c.key, rate_counters.c.window_start],
            set_={"hits": rate_counters.c.hits + bindparam("p_by")},
        )
        .returning(rate_counters.c.hits)
    )
    for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def hits(conn: Connection, key: str, window_start: datetime) -> int:
    """How often ``key`` was counted in the window starting at ``window_start``."""
    found = _HITS.scalar(conn, {"p_key": key, "p_start": window_start})
    return int(found or 0)


def count(conn: Connection, key: str, window_start: datetime, by: int = 1) -> int:
    """Add ``by`` to the window's counter in one statement (an upsert, so concurrent
    writers never lose a hit) and return the new total."""
    params = {"p_key": key, "p_start": window_start, "p_by": by}
    return int(_COUNT[conn.dialect.name].scalar_one(conn, params))


def pending_authorizations(conn: Connection, account_id: str, now: datetime) -> int:
    """The account's authorizations still pending (not expired)."""
    return int(_PENDING.scalar_one(conn, {"p_account": account_id, "p_now": now}))


def prune(conn: Connection, before: datetime) -> int:
    """Forget windows that started before ``before`` (they can limit nothing any more)."""
    result = conn.execute(delete(rate_counters).where(rate_counters.c.window_start < before))
    return int(result.rowcount or 0)
