"""Revocations of relayed certificates that their upstream CA must still be told of.

An outbox: the local revocation (``certificates.revoked_at``) and this row are written in the
same transaction, whoever revoked (an ACME account, the certificate's key, the console); the
relay's processes then send revokeCert upstream under a lease (``store.leases``) until the
upstream has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from acmefleet.models import Certificate
from acmefleet.store.leases import LeasedQueue
from acmefleet.store.schema import certificates
from acmefleet.store.schema import upstream_revocations as table

UPSTREAM_CA_PREFIX = "upstream:"
_QUEUE = LeasedQueue(table, "certificate_id", table.c.state == "queued")


@dataclass(frozen=True)
class PendingRevocation:
    certificate_id: str
    upstream: str
    reason: int
    attempts: int
    chain_pem: str
    serial_hex: str


def upstream_of(certificate: Certificate) -> str | None:
    """The upstream CA that issued ``certificate`` (None: this server's own CA)."""
    if certificate.ca_level.startswith(UPSTREAM_CA_PREFIX):
        return certificate.ca_level.removeprefix(UPSTREAM_CA_PREFIX)
    return None


def queue_if_relayed(
    conn: Connection, certificate: Certificate, reason: int, now: datetime
) -> bool:
    """Queue telling the upstream of a revocation just recorded here, if it issued it."""
    upstream = upstream_of(certificate)
    if upstream is None:
        return False
    conn.execute(
        insert(table).values(
            certificate_id=certificate.id,
            upstream=upstream,
            reason=reason,
            state="queued",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    return True


def _pending(conn: Connection, rows: list[Any]) -> list[PendingRevocation]:
    if not rows:
        return []
    ids = [row.certificate_id for row in rows]
    chains = {
        row.id: (row.chain_pem, row.serial_hex)
        for row in conn.execute(
            select(certificates.c.id, certificates.c.chain_pem, certificates.c.serial_hex).where(
                certificates.c.id.in_(ids)
            )
        )
    }
    return [
        PendingRevocation(
            row.certificate_id, row.upstream, row.reason, row.attempts, *chains[row.certificate_id]
        )
        for row in rows
        if row.certificate_id in chains
    ]


def due(conn: Connection, now: datetime, limit: int) -> list[PendingRevocation]:
    return _pending(conn, _QUEUE.due(conn, now, limit))


def leased(conn: Connection, now: datetime) -> list[tuple[PendingRevocation, str]]:
    rows = _QUEUE.leased(conn, now)
    owners = {row.certificate_id: row.lease_owner for row in rows}
    return [(p, owners[p.certificate_id]) for p in _pending(conn, rows)]


claim = _QUEUE.claim
take_over = _QUEUE.take_over
renew = _QUEUE.renew
release = _QUEUE.release


reschedule = _QUEUE.reschedule
finish = _QUEUE.finish


def state_of(conn: Connection, certificate_id: str) -> str | None:
    """The upstream revocation's state (``queued``, ``done``, ``failed``), for status and tests."""
    value: str | None = conn.execute(
        select(table.c.state).where(table.c.certificate_id == certificate_id)
    ).scalar()
    return value
