"""``Database.write`` when PostgreSQL cuts the connection in the middle of a transaction (a
restart's fast shutdown, an administrator's ``pg_terminate_backend``): the caller gets
StoreUnavailable (a 503 with Retry-After), not an error of the clean-up over the real one."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from acmefleet.errors import StoreUnavailable
from acmefleet.store.engine import open_database
from tests.support.postgres import PostgresServer
from tests.unit.conftest import TEMPLATE


def test_a_connection_cut_mid_transaction_is_unavailable_and_the_next_one_works(
    postgres_template: PostgresServer,
) -> None:
    url = postgres_template.create_database("cut_mid_transaction", template=TEMPLATE)
    db = open_database(url)
    try:
        with pytest.raises(StoreUnavailable), db.write() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            # Waits (up to 10 s) until the backend is gone: the next statement meets it cut.
            [(done,)] = postgres_template.execute(f"SELECT pg_terminate_backend({int(pid)}, 10000)")
            assert done is True
            conn.execute(text("SELECT 1"))
        with db.write() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()
        postgres_template.drop_database("cut_mid_transaction")
