"""API tokens for the console: ``acmefleet_<id>_<secret>``, only a hash of the secret stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection

from acmefleet.console.errors import Conflict, ConsoleError, NotFound
from acmefleet.store import audit
from acmefleet.store import tokens as token_store

Role = Literal["admin", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "auditor")
PREFIX = "acmefleet"
_TOKEN_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Principal:
    """Who is calling the console."""

    token_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"token:{self.name}"

    @property
    def can_write(self) -> bool:
        return self.role == "admin"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(
    conn: Connection, *, name: str, role: str, actor: str, now: datetime
) -> tuple[str, Principal]:
    """A new token; the returned string is the only time the secret exists outside a hash."""
    if role not in ROLES:
        raise ConsoleError(f"role must be one of {', '.join(ROLES)}")
    clean = name.strip()
    if not clean or len(clean) > 200 or not clean.isprintable():
        raise ConsoleError("a token name must be 1-200 printable characters")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32).replace("-", "A").replace("_", "B")
    token_store.insert_token(
        conn,
        token_store.TokenRecord(
            token_id,
            clean,
            role,
            _hash(secret),
            now,
            actor,
            None,
        ),
    )
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="token.create",
        target=token_id,
        details={"name": clean, "role": role},
    )
    return f"{PREFIX}_{token_id}_{secret}", Principal(token_id, clean, role)


def presented_id(presented: str) -> str | None:
    """The id part of a presented token when it has the form of one (ids are not secret)."""
    parts = presented.strip().split("_", 2)
    if len(parts) == 3 and parts[0] == PREFIX and _TOKEN_ID.fullmatch(parts[1]):
        return parts[1]
    return None


def authenticate(conn: Connection, presented: str) -> Principal | None:
    """The principal for a presented token, or None (unknown, revoked or wrong secret)."""
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    record = token_store.get_token(conn, parts[1])
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(record.secret_sha256, _hash(parts[2])):
        return None
    return Principal(record.id, record.name, record.role)  # type: ignore[arg-type]


def revoke(conn: Connection, token_id: str, *, actor: str, now: datetime) -> None:
    if token_store.get_token(conn, token_id) is None:
        raise NotFound(f"no token {token_id!r}")
    if not token_store.revoke_token(conn, token_id, now):
        raise Conflict(f"token {token_id!r} is already revoked")
    audit.record(conn, at=now, actor=actor, action="token.revoke", target=token_id)
