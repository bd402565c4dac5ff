"""Minting EAB credentials: a key id and an HMAC key, shown once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.config import ServerConfig
from acmefleet.console.errors import Conflict, ConsoleError, NotFound
from acmefleet.jose.b64 import b64url_encode
from acmefleet.models import EabCredential
from acmefleet.store import audit
from acmefleet.store import eab as eab_store
from acmefleet.store import orgs as org_store

HMAC_KEY_BYTES = 32
KID_BYTES = 16


@dataclass(frozen=True)
class MintedCredential:
    kid: str
    hmac_key: str
    endpoint: str
    directory: str
    expires_at: datetime


def _random_token(size: int) -> str:
    """Unpadded base64url that never starts with '-' (command lines would take it for a flag)."""
    while True:
        token = b64url_encode(secrets.token_bytes(size))
        if not token.startswith("-"):
            return token


def mint(
    conn: Connection,
    config: ServerConfig,
    *,
    org_name: str,
    endpoint: str,
    actor: str,
    now: datetime,
    lifetime: timedelta | None = None,
    source: str | None = None,
) -> MintedCredential:
    if endpoint not in config.endpoints:
        raise NotFound(f"no endpoint {endpoint!r}; configured: {', '.join(config.endpoints)}")
    org = org_store.find_org(conn, org_name)
    if org is None:
        raise NotFound(f"no organisation {org_name!r}")
    if org.status != "active":
        raise ConsoleError(f"organisation {org_name!r} is disabled")
    lifetime = lifetime if lifetime is not None else config.eab_lifetime
    if lifetime <= timedelta(0):
        raise ConsoleError("an EAB credential's lifetime must be positive")
    kid, hmac_key = _random_token(KID_BYTES), _random_token(HMAC_KEY_BYTES)
    eab_store.insert_credential(
        conn,
        kid=kid,
        org_id=org.id,
        endpoint=endpoint,
        hmac_key=hmac_key,
        created_at=now,
        expires_at=now + lifetime,
        created_by=actor,
    )
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="eab.mint",
        target=kid,
        source=source,
        details={"org": org.name, "endpoint": endpoint},
    )
    return MintedCredential(kid, hmac_key, endpoint, config.directory_url(endpoint), now + lifetime)


def list_credentials(conn: Connection) -> list[EabCredential]:
    return eab_store.list_credentials(conn)


def revoke(
    conn: Connection, kid: str, *, actor: str, now: datetime, source: str | None = None
) -> None:
    credential = eab_store.get_credential(conn, kid)
    if credential is None:
        raise NotFound(f"no EAB credential {kid!r}")
    if not eab_store.revoke(conn, kid, now):
        state = credential.state(now)
        raise Conflict(f"EAB credential {kid!r} is {state}; only unused ones can be revoked")
    audit.record(conn, at=now, actor=actor, action="eab.revoke", target=kid, source=source)
