"""The append-only audit log: who did what to which object, when, and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from acmefleet.store.schema import audit_events


def record(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    source: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(audit_events).values(
            at=at, actor=actor, action=action, target=target, source=source, details=details
        )
    )


def list_events(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]
