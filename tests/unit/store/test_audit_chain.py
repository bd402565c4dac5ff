"""The audit log's hash chain finds an edited, deleted, inserted or reordered event."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, text, update

from acmefleet.store import audit
from acmefleet.store.engine import Database, open_database, sqlite_url
from acmefleet.store.migrate import upgrade
from acmefleet.store.schema import audit_chain_head, audit_events
from tests.unit.rows import NOW


def _log(database: Database, count: int = 5) -> None:
    with database.write() as conn:
        for n in range(count):
            audit.record(
                conn,
                at=NOW + timedelta(seconds=n, microseconds=n),
                actor=f"token:admin-{n}",
                action="org.create",
                target=f"org {n}",
                source="192.0.2.1" if n % 2 else None,
                details={"n": n, "nested": {"b": [1, 2], "a": "ü"}} if n % 3 else None,
            )


def _verify(database: Database) -> audit.ChainReport:
    with database.read() as conn:
        return audit.verify_chain(conn)


def test_an_untouched_log_is_intact(database: Database) -> None:
    assert _verify(database) == audit.ChainReport(0, audit.GENESIS, ())
    _log(database)
    report = _verify(database)
    assert report.intact and report.events == 5
    with database.read() as conn:
        newest = audit.list_events(conn, 1)[0]
    assert report.head_hash == newest["hash"]


def test_an_edited_event_is_found(database: Database) -> None:
    _log(database)
    with database.write() as conn:
        conn.execute(update(audit_events).where(audit_events.c.id == 3).values(actor="someone"))
    report = _verify(database)
    assert not report.intact
    assert report.problems == ("event 3: its content does not match its hash (edited)",)


def test_edited_details_are_found(database: Database) -> None:
    _log(database)
    with database.write() as conn:
        conn.execute(update(audit_events).where(audit_events.c.id == 2).values(details={"n": 99}))
    assert "event 2" in _verify(database).problems[0]


def test_a_deleted_event_is_found(database: Database) -> None:
    _log(database)
    with database.write() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.id == 2))
    [problem] = _verify(database).problems
    assert problem.startswith("event 3: its previous hash does not match")


def test_a_deleted_tail_is_found_by_the_head(database: Database) -> None:
    _log(database)
    with database.write() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.id == 5))
    [problem] = _verify(database).problems
    assert "head records event 5" in problem


def test_reordered_events_are_found(database: Database) -> None:
    _log(database, 3)
    columns = ("at", "actor", "action", "target", "source", "details", "prev_hash", "hash")
    with database.write() as conn:
        rows = {r.id: r for r in conn.execute(audit_events.select())}
        for row_id, other in ((1, 2), (2, 1)):
            values = {c: getattr(rows[other], c) for c in columns}
            conn.execute(update(audit_events).where(audit_events.c.id == row_id).values(**values))
    assert not _verify(database).intact


def test_a_forged_event_at_the_end_is_found(database: Database) -> None:
    _log(database, 2)
    with database.write() as conn:
        conn.execute(
            insert(audit_events).values(
                at=NOW, actor="x", action="eab.bind", target="t", prev_hash="f" * 64, hash="e" * 64
            )
        )
    assert len(_verify(database).problems) == 2  # wrong link and wrong hash


def test_a_missing_head_is_found(database: Database) -> None:
    _log(database, 2)
    with database.write() as conn:
        conn.execute(delete(audit_chain_head))
    assert _verify(database).problems == ("the chain head is missing",)


def test_the_upgrade_chains_events_written_before_it(tmp_path: Path) -> None:
    """A database with events from before the chain migrates to an intact chain."""
    db = open_database(sqlite_url(tmp_path))
    try:
        upgrade(db, "0003")
        with db.write() as conn:
            for n in range(3):
                conn.execute(
                    text(
                        "INSERT INTO audit_events (at, actor, action, target, source, details) "
                        "VALUES (:at, 'cli:root', 'org.create', :t, NULL, :d)"
                    ),
                    {"at": f"2026-11-0{n + 1} 10:00:00.00000{n}", "t": f"org {n}", "d": '{"k":1}'},
                )
        upgrade(db)
        report = _verify(db)
        assert report.intact and report.events == 3
        _log(db, 1)  # appends continue the migrated chain
        assert _verify(db).intact and _verify(db).events == 4
    finally:
        db.dispose()


@pytest.mark.parametrize("limit", [1, 3])
def test_listing_is_unchanged_by_the_chain(database: Database, limit: int) -> None:
    _log(database, 4)
    with database.read() as conn:
        listed = audit.list_events(conn, limit)
    assert [e["id"] for e in listed] == list(range(4, 4 - limit, -1))
