"""The append-only audit log: who did what to which object, when, and from where.

Events form a hash chain: an event's ``hash`` is SHA-256 over its content and the previous
event's hash (:func:`event_hash`), and ``audit_chain_head`` holds the newest link. Appends
take the head row first, so concurrent writers line up behind one another (SQLite's
``BEGIN IMMEDIATE`` already does; PostgreSQL needs the row lock). :func:`verify_chain`
recomputes every link: an edited, deleted, inserted or reordered event, or a truncated
tail, is found. Someone who can rewrite the whole table and the head can forge a new
chain; keep the head hash somewhere else (``acmefleet admin audit verify`` prints it) to
catch that too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import audit_chain_head, audit_events

GENESIS = "0" * 64  # the "previous hash" of the first event
HEAD_ID = 1
_VERIFY_BATCH = 1000
# The head row is locked first (FOR UPDATE on PostgreSQL; SQLite's writer holds the database)
# so concurrent appends queue up instead of forking the chain.
_HEAD = Prepared(select(audit_chain_head).where(audit_chain_head.c.id == HEAD_ID).with_for_update())
_INSERT_EVENT = Prepared(insert(audit_events).returning(audit_events.c.id))
_INSERT_HEAD = Prepared(
    insert(audit_chain_head).values(
        id=HEAD_ID, last_id=bindparam("p_last_id"), last_hash=bindparam("p_hash"), length=1
    )
)
_MOVE_HEAD = Prepared(
    update(audit_chain_head)
    .where(audit_chain_head.c.id == HEAD_ID)
    .values(
        last_id=bindparam("p_last_id"),
        last_hash=bindparam("p_hash"),
        length=bindparam("p_length"),
    )
)


def event_hash(
    prev_hash: str,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    source: str | None,
    details: Any,
) -> str:
    """SHA-256 of the event in one canonical JSON form (sorted keys, UTC microseconds).

    Kept stable on purpose: migrations and old databases are verified with it.
    """
    canonical = {
        "prev": prev_hash,
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": actor,
        "action": action,
        "target": target,
        "source": source,
        "details": details,
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def _normalise_details(details: dict[str, Any] | None) -> Any:
    """Details as they read back from the JSON column, so the hash matches after a read."""
    if details is None:
        return None
    return json.loads(json.dumps(details, separators=(",", ":"), sort_keys=True))


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
    head = _HEAD.first(conn)
    prev = head.last_hash if head is not None else GENESIS
    stored_details = _normalise_details(details)
    digest = event_hash(
        prev,
        at=at,
        actor=actor,
        action=action,
        target=target,
        source=source,
        details=stored_details,
    )
    event_id = _INSERT_EVENT.scalar_one(
        conn,
        {
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "source": source,
            "details": stored_details,
            "prev_hash": prev,
            "hash": digest,
        },
    )
    link = {"p_last_id": int(event_id), "p_hash": digest}
    if head is None:
        _INSERT_HEAD.run(conn, link)
    else:
        _MOVE_HEAD.run(conn, {**link, "p_length": head.length + 1})


def list_events(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found: ``problems`` empty means the chain is intact."""

    events: int
    head_hash: str
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def _events_in_order(conn: Connection) -> Iterator[Any]:
    after = 0
    while True:
        rows = conn.execute(
            select(audit_events)
            .where(audit_events.c.id > after)
            .order_by(audit_events.c.id)
            .limit(_VERIFY_BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id


def verify_chain(conn: Connection, *, max_problems: int = 20) -> ChainReport:
    """Recompute every link, oldest first, and compare the end with the head row."""
    problems: list[str] = []
    prev, count, last_id = GENESIS, 0, 0
    for row in _events_in_order(conn):
        count += 1
        if row.prev_hash != prev:
            problems.append(
                f"event {row.id}: its previous hash does not match the event before it "
                "(an event was deleted, inserted or reordered)"
            )
        expected = event_hash(
            row.prev_hash,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            source=row.source,
            details=row.details,
        )
        if row.hash != expected:
            problems.append(f"event {row.id}: its content does not match its hash (edited)")
        prev, last_id = row.hash, row.id
        if len(problems) >= max_problems:
            problems.append("… stopped after too many problems")
            break
    head = conn.execute(
        select(audit_chain_head).where(audit_chain_head.c.id == HEAD_ID)
    ).one_or_none()
    if head is None:
        if count:
            problems.append("the chain head is missing")
    elif not problems and (head.last_hash, head.last_id, head.length) != (prev, last_id, count):
        problems.append(
            f"the chain ends at event {last_id} ({count} events) but its head records event "
            f"{head.last_id} ({head.length} events): events at the end were deleted or added"
        )
    return ChainReport(count, prev, tuple(problems))
