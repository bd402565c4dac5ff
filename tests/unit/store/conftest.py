"""Store fixtures over the shared migrated database (``tests/unit/conftest.py``).

The store's functions run against it exactly as the server runs them: the writer engine
(``BEGIN IMMEDIATE``, foreign keys on) for changes, the reader for queries.
"""

from __future__ import annotations

import pytest

from acmefleet.store import accounts, orgs
from acmefleet.store.engine import Database
from tests.unit.store.builders import account_model, at


@pytest.fixture
def db(database: Database) -> Database:
    """The migrated database of ``tests/unit/conftest.py``, under the store tests' name."""
    return database


@pytest.fixture
def org_id(db: Database) -> int:
    """The id of organisation ``acme`` (a second, ``other``, exists so ids are not all 1)."""
    with db.write() as conn:
        orgs.create_org(conn, "other", at(0))
        return orgs.create_org(conn, "acme", at(1)).id


@pytest.fixture
def account_id(db: Database, org_id: int) -> str:
    with db.write() as conn:
        accounts.insert_account(conn, account_model(org_id))
    return "acct-1"
