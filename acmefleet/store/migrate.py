"""Bring a database to the newest schema with the packaged Alembic migrations.

On PostgreSQL the whole upgrade is one transaction (DDL is transactional there) under an
advisory lock: replicas started together migrate once, the others wait and find it done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from acmefleet.store.engine import LOCK_TIMEOUT_MS, Database

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant the deployment's other applications do not use: "acmefleet" in ASCII.
_MIGRATION_LOCK = 0x61636D65666C6565


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _take_migration_lock(conn: Connection) -> None:
    """Wait, however long, for another process's migration; then let each DDL statement
    wait for its table lock no longer than the server's lock_timeout (a long transaction
    of a running replica fails the migration instead of queueing every query behind it)."""
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    key = {"key": _MIGRATION_LOCK}
    if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), key).scalar_one():
        log.info("another process is migrating the database; waiting for it")
        conn.execute(text("SET LOCAL lock_timeout = 0"))
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
        conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))


def upgrade(database: Database, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to ``revision``; returns the revisions before and after, as seen under the
    migration lock (a process that waited for another's migration finds nothing to do)."""
    config = alembic_config()
    with database.write() as conn:
        if database.dialect == "postgresql":
            _take_migration_lock(conn)
        before = MigrationContext.configure(conn).get_current_revision()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        return before, MigrationContext.configure(conn).get_current_revision()


class SchemaExists(Exception):
    """The database already holds an acmefleet schema (another server's state)."""


def initialise(database: Database, fill: Callable[[Connection], T]) -> T:
    """Migrate an empty database and ``fill`` it in one transaction: nothing is left behind
    if either fails, and two inits at once cannot both succeed (the second finds the
    schema once it gets the migration lock, and raises :class:`SchemaExists`)."""
    config = alembic_config()
    with database.write() as conn:
        if database.dialect == "postgresql":
            _take_migration_lock(conn)
        if MigrationContext.configure(conn).get_current_revision() is not None:
            raise SchemaExists("the database already holds an acmefleet schema")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return fill(conn)


def schema_is_current(database: Database) -> bool:
    """Whether the database is at this version's newest schema."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with database.read() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head
