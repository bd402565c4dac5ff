"""Unit-test fixtures shared across packages: a migrated SQLite database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from acmefleet.store.engine import Database, open_database, sqlite_url
from acmefleet.store.migrate import upgrade


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """The schema as the server builds it (Alembic migrations, not ``create_all``)."""
    db = open_database(sqlite_url(tmp_path))
    try:
        upgrade(db)
        yield db
    finally:
        db.dispose()
