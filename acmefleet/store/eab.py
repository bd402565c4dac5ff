"""EAB credentials: minted unused, bound exactly once (the HMAC erased), revoked, expired."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Row, insert, select, update

from acmefleet.models import EabCredential
from acmefleet.store.schema import eab_credentials


def _credential(row: Row[tuple[object, ...]]) -> EabCredential:
    return EabCredential(
        kid=row.kid,
        org_id=row.org_id,
        endpoint=row.endpoint,
        hmac_key=row.hmac_key,
        created_at=row.created_at,
        expires_at=row.expires_at,
        bound_at=row.bound_at,
        account_id=row.account_id,
        revoked_at=row.revoked_at,
    )


def insert_credential(
    conn: Connection,
    *,
    kid: str,
    org_id: int,
    endpoint: str,
    hmac_key: str,
    created_at: datetime,
    expires_at: datetime,
    created_by: str,
) -> None:
    conn.execute(
        insert(eab_credentials).values(
            kid=kid,
            org_id=org_id,
            endpoint=endpoint,
            hmac_key=hmac_key,
            created_at=created_at,
            expires_at=expires_at,
            created_by=created_by,
        )
    )


def get_credential(conn: Connection, kid: str) -> EabCredential | None:
    row = conn.execute(select(eab_credentials).where(eab_credentials.c.kid == kid)).one_or_none()
    return _credential(row) if row else None


def list_credentials(conn: Connection) -> list[EabCredential]:
    query = select(eab_credentials).order_by(eab_credentials.c.created_at)
    return [_credential(r) for r in conn.execute(query)]


def consume(conn: Connection, kid: str, hmac_key: str, account_id: str, now: datetime) -> bool:
    """Bind the credential to the account and erase its HMAC, if nobody did so first.

    The condition re-checks, inside the binding transaction, what was verified before
    it: still the same key, never bound, not revoked. Exactly one caller gets True.
    """
    result = conn.execute(
        update(eab_credentials)
        .where(
            eab_credentials.c.kid == kid,
            eab_credentials.c.hmac_key == hmac_key,
            eab_credentials.c.bound_at.is_(None),
            eab_credentials.c.revoked_at.is_(None),
        )
        .values(hmac_key=None, bound_at=now, account_id=account_id)
    )
    return result.rowcount == 1


def revoke(conn: Connection, kid: str, now: datetime) -> bool:
    """Revoke an unused credential (its HMAC erased too); False if bound or revoked."""
    result = conn.execute(
        update(eab_credentials)
        .where(
            eab_credentials.c.kid == kid,
            eab_credentials.c.bound_at.is_(None),
            eab_credentials.c.revoked_at.is_(None),
        )
        .values(hmac_key=None, revoked_at=now)
    )
    return result.rowcount == 1
