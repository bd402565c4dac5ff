"""store.prepared: the request path's statements read and fail exactly as Connection.execute.

Every test runs on SQLite and on PostgreSQL (the ``db`` fixture). The fast path leans on two
SQLAlchemy internals (the compiled statement's result columns and its types' cached
processors, and Connection._handle_dbapi_exception): these tests are what fails first if an
upgrade moves them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select, text
from sqlalchemy import exc as sa_exc

import acmefleet.store
from acmefleet.errors import StoreUnavailable
from acmefleet.store import accounts
from acmefleet.store.engine import Database, open_database
from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import accounts as accounts_table
from acmefleet.store.schema import used_nonces
from tests.support.postgres import PostgresServer
from tests.unit.conftest import TEMPLATE
from tests.unit.store.builders import account_model, at


def _store_statements() -> Iterator[tuple[str, Prepared]]:
    for module_info in pkgutil.iter_modules(acmefleet.store.__path__):
        module = importlib.import_module(f"acmefleet.store.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Prepared):
                yield f"{module_info.name}.{name}", value
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Prepared):
                        yield f"{module_info.name}.{name}[{key}]", item


def test_the_store_runs_its_request_path_through_prepared_statements() -> None:
    names = {name for name, _ in _store_statements()}
    # The statements of one issuance (accounts, nonces, orders, audit, rate limits, ...).
    for expected in (
        "accounts._BY_ID",
        "nonces._REDEEM",
        "orders._ORDER",
        "orders._CHALLENGES_OF_ORDER",
        "orders._SET_FINALIZATION",
        "audit._INSERT_EVENT",
        "ratelimits._COUNT[sqlite]",
        "certificates._INSERT",
        "orgs._DOMAINS",
        "delegations._RESTRICTED",
    ):
        assert expected in names


def test_a_row_reads_back_as_through_connection_execute(db: Database, org_id: int) -> None:
    with db.write() as conn:
        accounts.insert_account(conn, account_model(org_id))
    query = select(accounts_table).where(accounts_table.c.id == bindparam("p_id"))
    with db.read() as conn:
        fast = Prepared(query).first(conn, {"p_id": "acct-1"})
        slow = conn.execute(query, {"p_id": "acct-1"}).one()
    assert fast is not None
    assert tuple(fast) == tuple(slow)
    assert fast._fields == tuple(slow._fields)
    # The column types' processors ran: an aware UTC datetime, JSON as Python values.
    assert fast.created_at == at(11) and fast.created_at.tzinfo is not None
    assert fast.jwk == {"kty": "EC", "crv": "P-256", "x": "x1", "y": "y1"}


def test_rows_scalar_and_rowcount(db: Database, org_id: int) -> None:
    with db.write() as conn:
        for number in (1, 2, 3):
            accounts.insert_account(conn, account_model(org_id, number))
    ordered = Prepared(select(accounts_table.c.id).order_by(accounts_table.c.id.desc()))
    count = Prepared(select(text("count(*)")).select_from(accounts_table))
    touch = Prepared(
        accounts_table.update()
        .where(accounts_table.c.org_id == bindparam("p_org"))
        .values(status=bindparam("p_status"))
    )
    with db.write() as conn:
        assert [row.id for row in ordered.rows(conn)] == ["acct-3", "acct-2", "acct-1"]
        assert count.scalar(conn) == 3
        assert touch.run(conn, {"p_org": org_id, "p_status": "deactivated"}) == 3
        assert touch.run(conn, {"p_org": -1, "p_status": "deactivated"}) == 0
    with db.read() as conn:
        missing = Prepared(select(accounts_table).where(accounts_table.c.id == "nope"))
        assert missing.first(conn) is None
        assert missing.scalar(conn) is None
        with pytest.raises(LookupError):
            missing.scalar_one(conn)


def test_a_duplicate_key_raises_sqlalchemys_integrity_error_and_leaves_nothing(
    db: Database,
) -> None:
    redeem = Prepared(insert(used_nonces))
    row = {"nonce": "n-1", "expires_at": at(5)}
    with db.write() as conn:
        redeem.run(conn, row)
    with pytest.raises(sa_exc.IntegrityError), db.write() as conn:
        redeem.run(conn, {"nonce": "n-2", "expires_at": at(5)})
        redeem.run(conn, row)
    with db.read() as conn:
        # The whole transaction rolled back: n-2 is not there either.
        assert conn.execute(select(used_nonces.c.nonce)).scalars().all() == ["n-1"]


def test_statements_the_fast_path_cannot_run_are_refused_when_first_used(db: Database) -> None:
    table = Table(
        "defaults",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("made", String, default=lambda: datetime.now().isoformat()),
    )
    expanding = Prepared(
        select(used_nonces).where(used_nonces.c.nonce.in_(bindparam("p", expanding=True)))
    )
    with db.read() as conn:
        with pytest.raises(ValueError, match="expanding"):
            expanding.rows(conn, {"p": ["a", "b"]})
        with pytest.raises(ValueError, match="Python-side column defaults"):
            Prepared(insert(table)).run(conn, {"id": 1})


def test_a_connection_cut_under_a_prepared_statement_is_unavailable_then_heals(
    postgres_template: PostgresServer,
) -> None:
    url = postgres_template.create_database("prepared_cut", template=TEMPLATE)
    db = open_database(url)
    probe = Prepared(select(used_nonces).where(used_nonces.c.nonce == bindparam("p")))
    try:
        with pytest.raises(StoreUnavailable), db.write() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            [(done,)] = postgres_template.execute(f"SELECT pg_terminate_backend({int(pid)}, 10000)")
            assert done is True
            probe.rows(conn, {"p": "x"})
        # SQLAlchemy saw the disconnect: the pool threw the dead connection away.
        with db.write() as conn:
            assert probe.rows(conn, {"p": "x"}) == []
    finally:
        db.dispose()
        postgres_template.drop_database("prepared_cut")
