"""Nonce state (RFC 8555 §6.5): the shared HMAC key and the nonces already used.

Minting and checking nonces is ``acme.nonces``; this module only holds the rows that
let every replica agree: one key under a fixed name, and one row per redeemed nonce
whose primary key makes a second redemption fail, whichever replica sees it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import server_secrets, used_nonces

NONCE_KEY_NAME = "nonce-hmac-key"

_KEY = select(server_secrets.c.value).where(server_secrets.c.name == NONCE_KEY_NAME)
_REDEEM = Prepared(insert(used_nonces))
_PRUNE = delete(used_nonces).where(used_nonces.c.expires_at < bindparam("p_now"))


def get_key(conn: Connection) -> str | None:
    """The stored nonce key (base64url, as written), or None before the first start."""
    return conn.execute(_KEY).scalar_one_or_none()


def insert_key(conn: Connection, value: str) -> str:
    """Store ``value`` as the nonce key unless one is there; return the key that is.

    Replicas started together on a fresh database race here: the first insert wins, the
    others (on PostgreSQL, after waiting for its commit) insert nothing and read it."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        insert(server_secrets).values(name=NONCE_KEY_NAME, value=value).on_conflict_do_nothing()
    )
    return str(conn.execute(_KEY).scalar_one())


def redeem(conn: Connection, nonce: str, expires_at: datetime) -> bool:
    """Record ``nonce`` as used; False if it was recorded before.

    On a False answer the transaction may be unusable (PostgreSQL aborts it), so callers
    redeem before any other write and roll back on failure.
    """
    try:
        _REDEEM.run(conn, {"nonce": nonce, "expires_at": expires_at})
    except IntegrityError:
        return False
    return True


def prune(conn: Connection, now: datetime) -> int:
    """Forget nonces that expired before ``now`` (checking refuses them anyway)."""
    result = conn.execute(_PRUNE, {"p_now": now})
    return int(result.rowcount or 0)
