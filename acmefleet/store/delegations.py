"""Domain delegations: which accounts or EAB credentials may order under which domains."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, delete, exists, insert, or_, select

from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import delegation_restrictions, domain_delegations

_FOR_ACCOUNT = Prepared(
    select(domain_delegations.c.domain_id).where(
        or_(
            domain_delegations.c.account_id == bindparam("p_account"),
            domain_delegations.c.eab_kid == bindparam("p_kid"),
        )
    )
)

_RESTRICTED = Prepared(
    select(
        exists().where(
            or_(
                delegation_restrictions.c.account_id == bindparam("p_account"),
                delegation_restrictions.c.eab_kid == bindparam("p_kid"),
            )
        )
    )
)


@dataclass(frozen=True)
class Delegation:
    id: int
    domain_id: int
    account_id: str | None
    eab_kid: str | None
    created_at: datetime


def _delegation(row: Row[tuple[object, ...]]) -> Delegation:
    return Delegation(
        id=row.id,
        domain_id=row.domain_id,
        account_id=row.account_id,
        eab_kid=row.eab_kid,
        created_at=row.created_at,
    )


def add(
    conn: Connection,
    domain_id: int,
    *,
    account_id: str | None,
    eab_kid: str | None,
    now: datetime,
) -> Delegation:
    result = conn.execute(
        insert(domain_delegations).values(
            domain_id=domain_id, account_id=account_id, eab_kid=eab_kid, created_at=now
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    _restrict(conn, account_id=account_id, eab_kid=eab_kid, now=now)
    return Delegation(
        id=int(key[0]), domain_id=domain_id, account_id=account_id, eab_kid=eab_kid, created_at=now
    )


def _restrict(
    conn: Connection, *, account_id: str | None, eab_kid: str | None, now: datetime
) -> None:
    """From its first delegation on, the account or credential orders only where delegated."""
    table = delegation_restrictions
    column = table.c.account_id if account_id is not None else table.c.eab_kid
    value = account_id if account_id is not None else eab_kid
    if conn.execute(select(column).where(column == value)).first() is None:
        conn.execute(insert(table).values(account_id=account_id, eab_kid=eab_kid, created_at=now))


def list_for_domain(conn: Connection, domain_id: int) -> list[Delegation]:
    query = select(domain_delegations).where(domain_delegations.c.domain_id == domain_id)
    return [_delegation(r) for r in conn.execute(query.order_by(domain_delegations.c.id))]


def get(conn: Connection, delegation_id: int) -> Delegation | None:
    query = select(domain_delegations).where(domain_delegations.c.id == delegation_id)
    row = conn.execute(query).one_or_none()
    return _delegation(row) if row else None


def remove(conn: Connection, delegation_id: int) -> None:
    conn.execute(delete(domain_delegations).where(domain_delegations.c.id == delegation_id))


def remove_for_domain(conn: Connection, domain_id: int) -> None:
    conn.execute(delete(domain_delegations).where(domain_delegations.c.domain_id == domain_id))


def is_restricted(conn: Connection, account_id: str, eab_kid: str) -> bool:
    """Whether the account, or the credential it was bound with, was ever delegated a domain."""
    return bool(_RESTRICTED.scalar(conn, {"p_account": account_id, "p_kid": eab_kid}))


def domain_ids_for(conn: Connection, account_id: str, eab_kid: str) -> set[int]:
    """Domains delegated to the account or to the credential it was bound with."""
    rows = _FOR_ACCOUNT.rows(conn, {"p_account": account_id, "p_kid": eab_kid})
    return {row.domain_id for row in rows}
