"""Database engines: a writer that takes the write lock up front, and a reader.

SQLite (the default) runs in WAL mode; writers use ``BEGIN IMMEDIATE`` so two processes
never deadlock upgrading a read lock. PostgreSQL (psycopg 3) runs at READ COMMITTED, one
pooled engine for both, every statement correct there too (compare-and-set UPDATEs, a row
lock where a chain is appended to). A database that fails for a reason that passes (a
restart, a failover, a full pool) raises :class:`~acmefleet.errors.StoreUnavailable` out of
:meth:`Database.write` and :meth:`Database.read`, which the front ends answer 503 with
``Retry-After``; the pool drops the dead connections and reconnects by itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from acmefleet.config import DatabaseConfig
from acmefleet.errors import StoreUnavailable

SQLITE_FILE = "acmefleet.db"
BUSY_TIMEOUT_MS = 10_000
# PostgreSQL: the longest a statement waits for a row or table lock (see _postgres_connect_args).
LOCK_TIMEOUT_MS = 5_000
# How long sent data may stay unacknowledged before libpq gives the connection up.
TCP_USER_TIMEOUT_MS = 15_000
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
        # On the driver's connection (one per transaction: exec_driver_sql's ~20 µs were
        # 2 % of an issuance), failing as exec_driver_sql would: a BEGIN IMMEDIATE that
        # waited busy_timeout for the write lock is OperationalError, hence StoreUnavailable.
        try:
            conn.connection.dbapi_connection.execute(begin)  # type: ignore[union-attr]
        except Exception as error:
            conn._handle_dbapi_exception(error, begin, (), None, None)


# PostgreSQL errors a retry can mend (SQLSTATE classes and codes): connection exceptions,
# insufficient resources (too many connections), operator intervention (shutdown, a
# statement cut by statement_timeout), serialization failures and deadlock victims, a lock
# not granted within lock_timeout, and a write sent to a standby after a failover.
_PASSING_CLASSES = ("08", "53", "57")
_PASSING_CODES = ("40001", "40P01", "55P03", "25006")
# A standby that answers pings but refuses writes: drop the connection, not only the request.
_DISCONNECT_CODES = ("25006",)


def _sqlstate(error: sa_exc.DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _unavailable(error: BaseException) -> StoreUnavailable | None:
    """The error as a passing unavailability, or None for one a retry would not mend."""
    if isinstance(error, sa_exc.TimeoutError):
        return StoreUnavailable("every pooled connection is busy")
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    if error.connection_invalidated:
        return StoreUnavailable("the connection was lost")
    message = str(error.orig).strip()
    if type(error.orig).__module__.startswith("psycopg"):
        state = _sqlstate(error)
        # No SQLSTATE: libpq failed before the server answered (refused, unreachable, a
        # timeout, authentication). Its first line names the fault, never the password.
        if state is None and isinstance(error, sa_exc.OperationalError):
            first_line = message.splitlines()[0] if message else type(error.orig).__name__
            return StoreUnavailable(first_line)
        if state is not None and (state[:2] in _PASSING_CLASSES or state in _PASSING_CODES):
            return StoreUnavailable(f"{type(error.orig).__name__} (SQLSTATE {state})")
        return None
    # SQLite: only a lock held past busy_timeout; "no such table" is a bug, not a retry.
    if isinstance(error, sa_exc.OperationalError) and ("locked" in message or "busy" in message):
        return StoreUnavailable("the database is locked")
    return None


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as error:
        unavailable = _unavailable(error)
        if unavailable is None:
            raise
        raise unavailable from error


@dataclass(frozen=True)
class Database:
    """The writer and reader engines over one database (the same engine on PostgreSQL)."""

    writer: Engine
    reader: Engine

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

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
            with _translated(), self.writer.begin() as conn:
                # ``info`` belongs to the pooled DBAPI connection and outlives this
                # checkout: start each transaction with empty lists and leave none behind.
                conn.info[_AFTER_COMMIT] = committed
                conn.info[_AFTER_ROLLBACK] = rolled_back
                try:
                    yield conn
                finally:
                    # A connection the database cut (a restart) is invalidated: its pool
                    # entry starts afresh with an empty ``info``, and reaching for it now
                    # would raise PendingRollbackError over the error that cut it.
                    if not conn.invalidated:
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
            with _translated(), self.writer.begin() as conn:
                for action in actions:
                    action(conn)
        except StoreUnavailable as error:  # the database went away: it is not worth a trace
            log.warning("recording after a rollback failed: %s", error)
        except Exception:  # never hide the error that caused the rollback
            log.exception("recording after a rollback failed")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with _translated(), self.reader.begin() as conn:
            yield conn

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers a trivial query."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
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


def _drop_standby_connections(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        state = getattr(context.original_exception, "sqlstate", None)
        if state in _DISCONNECT_CODES:
            context.is_disconnect = True


def _postgres_connect_args(url: str, settings: DatabaseConfig) -> dict[str, Any]:
    """libpq settings that keep a lost database from hanging a request; the URL's own
    query parameters (``?connect_timeout=``, ``?passfile=``…) win over these defaults."""
    given = make_url(url).query
    statement_ms = int(settings.statement_timeout * 1000)
    defaults: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout,
        "application_name": "acmefleet",
        # With several hosts in the URL, the one that takes writes (the primary).
        "target_session_attrs": "read-write",
        # A peer that vanished without a FIN (a failover, a cable): noticed in ~25 s while
        # the connection waits for an answer (keepalives)...
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        # ...and in TCP_USER_TIMEOUT_MS when what was sent is never acknowledged (a pool's
        # ping or a query into a black hole), instead of the kernel's ~15 min of retries.
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        # The server runs its queries on the event loop: a row lock held by a stuck or
        # vanished peer must cost a request LOCK_TIMEOUT_MS (then 503), not the worker.
        "options": f"-c statement_timeout={statement_ms}"
        f" -c lock_timeout={LOCK_TIMEOUT_MS}"
        f" -c idle_in_transaction_session_timeout={statement_ms * 2}",
    }
    return {key: value for key, value in defaults.items() if key not in given}


def open_database(url: str, settings: DatabaseConfig | None = None) -> Database:
    settings = settings or DatabaseConfig()
    pool = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
    }
    if url.startswith("sqlite"):
        _create_private_file(url)
        writer = create_engine(url, hide_parameters=True, **pool)
        reader = create_engine(url, hide_parameters=True, **pool)
        _tune_sqlite(writer, immediate=True)
        _tune_sqlite(reader, immediate=False)
        return Database(writer=writer, reader=reader)
    if url.startswith("postgresql://"):  # SQLAlchemy would pick psycopg2, not shipped
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(
        url,
        # A connection the server closed (restart, failover) is found before use, not mid-request.
        pool_pre_ping=True,
        connect_args=_postgres_connect_args(url, settings),
        **pool,
        # Errors name the statement, never its values (EAB HMAC keys are inserted).
        hide_parameters=True,
    )
    _drop_standby_connections(engine)
    return Database(writer=engine, reader=engine)
