"""Replay nonces (RFC 8555 §6.5) that any replica can check.

A nonce is ``expiry || random || HMAC`` under a key kept in the database, so minting
needs no write and every replica accepts every other replica's nonces. Redemption is
one INSERT into ``used_nonces`` inside the request's transaction: the primary key makes
a second use fail, whichever replica sees it.
"""

from __future__ import annotations

import hmac
import os
import secrets
import struct
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from acmefleet.clock import Clock
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.jose.b64 import b64url_decode, b64url_encode
from acmefleet.store import nonces as nonce_store

_MAC_BYTES = 16
_RANDOM_BYTES = 12


def bad_nonce(detail: str) -> AcmeError:
    return AcmeError(ProblemType.BAD_NONCE, detail)


def load_or_create_nonce_key(conn: Connection) -> bytes:
    """The shared nonce key, created on first use (inside the caller's transaction)."""
    found = nonce_store.get_key(conn)
    if found is None:
        found = nonce_store.insert_key(conn, b64url_encode(secrets.token_bytes(32)))
    return b64url_decode(found)


class NonceService:
    def __init__(self, key: bytes, clock: Clock, lifetime: timedelta) -> None:
        self._key = key
        self._clock = clock
        self._lifetime = lifetime

    def _mac(self, body: bytes) -> bytes:
        # hmac.digest: OpenSSL's one-shot HMAC, without building an HMAC object per nonce.
        return hmac.digest(self._key, body, "sha256")[:_MAC_BYTES]

    def mint(self) -> str:
        expiry = int((self._clock.now() + self._lifetime).timestamp())
        body = struct.pack(">Q", expiry) + os.urandom(_RANDOM_BYTES)
        return b64url_encode(body + self._mac(body))

    def check(self, nonce: str) -> datetime:
        """Authenticity and freshness, without the store; returns the nonce's expiry."""
        try:
            raw = b64url_decode(nonce)
        except ValueError as exc:
            raise bad_nonce("the nonce is not base64url") from exc
        if len(raw) != 8 + _RANDOM_BYTES + _MAC_BYTES:
            raise bad_nonce("the nonce was not issued by this server")
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise bad_nonce("the nonce was not issued by this server")
        expiry = datetime.fromtimestamp(struct.unpack(">Q", body[:8])[0], UTC)
        if expiry <= self._clock.now():
            raise bad_nonce("the nonce has expired")
        return expiry

    def redeem(self, conn: Connection, nonce: str) -> None:
        """Use the nonce up; badNonce if it was used before.

        Call it before any other write of the transaction: a failed insert leaves the
        transaction to be rolled back, which is what a badNonce answer does anyway.
        """
        expiry = self.check(nonce)
        if not nonce_store.redeem(conn, nonce, expiry):
            raise bad_nonce("the nonce has already been used")

    def prune(self, conn: Connection) -> int:
        """Forget used nonces that have expired anyway (they fail ``check``)."""
        return nonce_store.prune(conn, self._clock.now())
