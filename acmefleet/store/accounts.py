"""ACME accounts: one per (endpoint, key thumbprint)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from acmefleet.models import Account
from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import accounts

_INSERT = insert(accounts)
_BY_ID = Prepared(select(accounts).where(accounts.c.id == bindparam("p_id")))
_BY_THUMBPRINT = Prepared(
    select(accounts).where(
        accounts.c.endpoint == bindparam("p_endpoint"),
        accounts.c.thumbprint == bindparam("p_thumbprint"),
    )
)


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        endpoint=row.endpoint,
        org_id=row.org_id,
        jwk=row.jwk,
        thumbprint=row.thumbprint,
        status=row.status,
        contact=row.contact,
        eab_kid=row.eab_kid,
        created_at=row.created_at,
    )


def insert_account(conn: Connection, account: Account) -> None:
    conn.execute(
        _INSERT,
        dict(
            id=account.id,
            endpoint=account.endpoint,
            org_id=account.org_id,
            jwk=account.jwk,
            thumbprint=account.thumbprint,
            status=account.status,
            contact=account.contact,
            eab_kid=account.eab_kid,
            created_at=account.created_at,
        ),
    )


def get_account(conn: Connection, account_id: str) -> Account | None:
    row = _BY_ID.first(conn, {"p_id": account_id})
    return _account(row) if row else None


def find_by_thumbprint(conn: Connection, endpoint: str, thumbprint: str) -> Account | None:
    params = {"p_endpoint": endpoint, "p_thumbprint": thumbprint}
    row = _BY_THUMBPRINT.first(conn, params)
    return _account(row) if row else None


def list_accounts(conn: Connection) -> list[Account]:
    return [_account(r) for r in conn.execute(select(accounts).order_by(accounts.c.created_at))]


def update_account(conn: Connection, account_id: str, **values: Any) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
