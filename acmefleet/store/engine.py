"""Database engines: a writer that takes the write lock up front, and a reader.

SQLite (the default) runs in WAL mode; writers use ``BEGIN IMMEDIATE`` so two processes
never deadlock upgrading a read lock. PostgreSQL URLs are used as given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_FILE = "acmefleet.db"
BUSY_TIMEOUT_MS = 10_000
# Where a write transaction keeps what must run once it has committed (``Connection.info``).
_AFTER_COMMIT = "acmefleet.after_commit"
_AFTER_ROLLBACK = "acmefleet.after_rollback"
log = logging.getLogger(__name__)


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / SQLITE_FILE}"


def _tune_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


@dataclass(frozen=True)
class Database:
    """The writer and reader engines over one database."""

    writer: Engine
    reader: Engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any exception.

        Actions registered with :func:`after_commit` run after the commit, never after a
        rollback: a cache dropped or a task started then sees what was written. Those
        registered with :func:`after_rollback` run only when it rolls back, in a fresh
        transaction of their own: what must be remembered of a refused request (a failed
        attempt counted against a rate limit) survives the rollback of everything else.
        """
        committed: list[Callable[[], None]] = []
        rolled_back: list[Callable[[Connection], None]] = []
        try:
            with self.writer.begin() as conn:
                # ``info`` belongs to the pooled DBAPI connection and outlives this
                # checkout: start each transaction with empty lists and leave none behind.
                conn.info[_AFTER_COMMIT] = committed
                conn.info[_AFTER_ROLLBACK] = rolled_back
                try:
                    yield conn
                finally:
                    conn.info.pop(_AFTER_COMMIT, None)
                    conn.info.pop(_AFTER_ROLLBACK, None)
        except BaseException:
            if rolled_back:
                self._run_after_rollback(rolled_back)
            raise
        for action in committed:
            action()

    def _run_after_rollback(self, actions: list[Callable[[Connection], None]]) -> None:
        try:
            with self.writer.begin() as conn:
                for action in actions:
                    action(conn)
        except Exception:  # never hide the error that caused the rollback
            log.exception("recording after a rollback failed")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.reader.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()


def after_commit(conn: Connection, action: Callable[[], None]) -> None:
    """Run ``action`` once the write transaction of ``conn`` has committed."""
    pending = conn.info.get(_AFTER_COMMIT)
    if pending is None:
        raise RuntimeError("after_commit needs a transaction opened by Database.write()")
    pending.append(action)


def after_rollback(conn: Connection, action: Callable[[Connection], None]) -> None:
    """Run ``action`` in a new transaction if the write transaction of ``conn`` rolls back."""
    pending = conn.info.get(_AFTER_ROLLBACK)
    if pending is None:
        raise RuntimeError("after_rollback needs a transaction opened by Database.write()")
    pending.append(action)


def _create_private_file(url: str) -> None:
    """SQLite files hold HMAC keys until binding: create them 0600 (WAL files follow)."""
    path = Path(url.removeprefix("sqlite:///"))
    if url.startswith("sqlite:///") and not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def open_database(url: str) -> Database:
    if url.startswith("sqlite"):
        _create_private_file(url)
        writer = create_engine(url, pool_size=4, max_overflow=8)
        reader = create_engine(url, pool_size=4, max_overflow=8)
        _tune_sqlite(writer, immediate=True)
        _tune_sqlite(reader, immediate=False)
        return Database(writer=writer, reader=reader)
    engine = create_engine(url, pool_pre_ping=True)
    return Database(writer=engine, reader=engine)
