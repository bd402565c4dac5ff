"""Unit-test fixtures shared across packages: a migrated database per test, on each backend.

``database`` runs every test that asks for it twice: on SQLite (the embedded default) and on
PostgreSQL (a private cluster of Debian's server, started once per session). Both get the
schema from the same Alembic migrations; on PostgreSQL each test starts from a copy of a
database migrated once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmefleet.store.engine import Database, open_database, sqlite_url
from acmefleet.store.migrate import upgrade
from tests.support.postgres import PostgresServer, postgres_available

TEMPLATE = "acmefleet_template"
_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster holding ``TEMPLATE``, migrated to the newest schema."""
    if not postgres_available():
        pytest.fail("PostgreSQL is needed (scripts/quickstart setup installs it, as root)")
    with PostgresServer() as server:
        url = server.create_database(TEMPLATE)
        db = open_database(url)
        try:
            upgrade(db)
        finally:
            db.dispose()
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The schema as the server builds it (Alembic migrations, not ``create_all``)."""
    if request.param == "sqlite":
        db = open_database(sqlite_url(tmp_path))
        try:
            upgrade(db)
            yield db
        finally:
            db.dispose()
        return
    server: PostgresServer = request.getfixturevalue("postgres_template")
    name = f"t{next(_numbers)}"
    db = open_database(server.create_database(name, template=TEMPLATE))
    try:
        yield db
    finally:
        db.dispose()
        server.drop_database(name)
