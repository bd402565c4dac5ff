"""Console API tokens (hashed) and web sessions (hashed ids, with a CSRF token)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from acmefleet.store.schema import admin_tokens, console_sessions

_TOKEN = select(admin_tokens).where(admin_tokens.c.id == bindparam("p_id"))


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    role: str
    secret_sha256: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


def _token(row: Row[tuple[object, ...]]) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        secret_sha256=row.secret_sha256,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


def insert_token(conn: Connection, record: TokenRecord) -> None:
    conn.execute(
        insert(admin_tokens).values(
            id=record.id,
            name=record.name,
            role=record.role,
            secret_sha256=record.secret_sha256,
            created_at=record.created_at,
            created_by=record.created_by,
        )
    )


def get_token(conn: Connection, token_id: str) -> TokenRecord | None:
    row = conn.execute(_TOKEN, {"p_id": token_id}).one_or_none()
    return _token(row) if row else None


def list_tokens(conn: Connection) -> list[TokenRecord]:
    return [
        _token(r) for r in conn.execute(select(admin_tokens).order_by(admin_tokens.c.created_at))
    ]


def revoke_token(conn: Connection, token_id: str, now: datetime) -> bool:
    result = conn.execute(
        update(admin_tokens)
        .where(admin_tokens.c.id == token_id, admin_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    conn.execute(delete(console_sessions).where(console_sessions.c.token_id == token_id))
    return result.rowcount == 1


@dataclass(frozen=True)
class SessionRecord:
    token_id: str
    csrf_token: str
    expires_at: datetime


def insert_session(
    conn: Connection,
    *,
    id_sha256: str,
    token_id: str,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
    conn.execute(
        insert(console_sessions).values(
            id_sha256=id_sha256,
            token_id=token_id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
        )
    )


def get_session(conn: Connection, id_sha256: str) -> SessionRecord | None:
    row = conn.execute(
        select(console_sessions).where(console_sessions.c.id_sha256 == id_sha256)
    ).one_or_none()
    if row is None:
        return None
    return SessionRecord(
        token_id=row.token_id, csrf_token=row.csrf_token, expires_at=row.expires_at
    )


def delete_session(conn: Connection, id_sha256: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.id_sha256 == id_sha256))
