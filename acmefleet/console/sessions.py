"""Web console sessions: a random id in an HttpOnly cookie, a CSRF token per session."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.console.tokens import Principal
from acmefleet.store import audit
from acmefleet.store import tokens as token_store

SESSION_LIFETIME = timedelta(hours=8)


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf_token: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(
    conn: Connection, principal: Principal, now: datetime, source: str | None = None
) -> tuple[str, Session]:
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    token_store.insert_session(
        conn,
        id_sha256=_hash(session_id),
        token_id=principal.token_id,
        csrf_token=csrf,
        now=now,
        expires_at=now + SESSION_LIFETIME,
    )
    audit.record(
        conn,
        at=now,
        actor=principal.actor,
        action="console.login",
        target=principal.token_id,
        source=source,
    )
    return session_id, Session(principal, csrf)


def load_session(conn: Connection, session_id: str, now: datetime) -> Session | None:
    record = token_store.get_session(conn, _hash(session_id))
    if record is None or record.expires_at <= now:
        return None
    token = token_store.get_token(conn, record.token_id)
    if token is None or token.revoked_at is not None:
        return None
    return Session(Principal(token.id, token.name, token.role), record.csrf_token)  # type: ignore[arg-type]


def close_session(
    conn: Connection, session_id: str, *, now: datetime | None = None, source: str | None = None
) -> None:
    record = token_store.get_session(conn, _hash(session_id))
    token_store.delete_session(conn, _hash(session_id))
    if record is not None and now is not None:
        audit.record(
            conn,
            at=now,
            actor=f"token-id:{record.token_id}",
            action="console.logout",
            target=record.token_id,
            source=source,
        )


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf_token, presented)
