"""Issued certificates: the inventory, and revocation state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, func, insert, select, update

from acmefleet.models import Certificate
from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import certificates

_INSERT = Prepared(insert(certificates))
_BY_ID = Prepared(select(certificates).where(certificates.c.id == bindparam("p_id")))
# renewalInfo's lookup (every ARI client, every few hours per certificate): prepared.
_BY_SERIAL = Prepared(
    select(certificates).where(certificates.c.serial_hex == bindparam("p_serial"))
)


def _certificate(row: Any) -> Certificate:
    return Certificate(
        id=row.id,
        serial_hex=row.serial_hex,
        account_id=row.account_id,
        order_id=row.order_id,
        org_id=row.org_id,
        endpoint=row.endpoint,
        ca_level=row.ca_level,
        profile=row.profile,
        names=row.names,
        not_before=row.not_before,
        not_after=row.not_after,
        chain_pem=row.chain_pem,
        spki_sha256=row.spki_sha256,
        revoked_at=row.revoked_at,
        revocation_reason=row.revocation_reason,
    )


def insert_certificate(conn: Connection, cert: Certificate, created_at: datetime) -> None:
    _INSERT.run(
        conn,
        dict(
            id=cert.id,
            serial_hex=cert.serial_hex,
            account_id=cert.account_id,
            order_id=cert.order_id,
            org_id=cert.org_id,
            endpoint=cert.endpoint,
            ca_level=cert.ca_level,
            profile=cert.profile,
            names=cert.names,
            not_before=cert.not_before,
            not_after=cert.not_after,
            chain_pem=cert.chain_pem,
            spki_sha256=cert.spki_sha256,
            created_at=created_at,
        ),
    )


def get_certificate(conn: Connection, cert_id: str) -> Certificate | None:
    row = _BY_ID.first(conn, {"p_id": cert_id})
    return _certificate(row) if row else None


def find_by_serial(conn: Connection, serial_hex: str) -> Certificate | None:
    row = _BY_SERIAL.first(conn, {"p_serial": serial_hex})
    return _certificate(row) if row else None


def list_certificates(conn: Connection) -> list[Certificate]:
    query = select(certificates).order_by(certificates.c.created_at)
    return [_certificate(r) for r in conn.execute(query)]


_REVOKED_ENTRIES = Prepared(
    select(
        certificates.c.serial_hex, certificates.c.revoked_at, certificates.c.revocation_reason
    ).where(certificates.c.ca_level == bindparam("p_level"), certificates.c.revoked_at.is_not(None))
)


class RevokedRow(NamedTuple):
    serial_hex: str
    revoked_at: datetime
    reason: int


def revoked_entries(conn: Connection, ca_level: str) -> list[RevokedRow]:
    """What a CRL lists for ``ca_level``: only the three columns it needs (the CRL of a CA
    with many revocations is built without reading every certificate's PEM)."""
    return [
        RevokedRow(row.serial_hex, row.revoked_at, row.revocation_reason or 0)
        for row in _REVOKED_ENTRIES.rows(conn, {"p_level": ca_level})
    ]


# Read on every CRL fetch (policy.crl_publication): prepared.
_REVOCATION_MARK = Prepared(
    select(
        func.count().label("revoked"), func.max(certificates.c.revoked_at).label("latest")
    ).where(certificates.c.ca_level == bindparam("p_level"), certificates.c.revoked_at.is_not(None))
)


def revocation_mark(conn: Connection, ca_level: str) -> tuple[int, datetime | None]:
    """How many certificates of ``ca_level`` are revoked, and when the latest was: any
    revocation changes it (a revocation is never undone)."""
    row = _REVOCATION_MARK.first(conn, {"p_level": ca_level})
    return (0, None) if row is None else (int(row.revoked), row.latest)


def mark_revoked(conn: Connection, cert_id: str, at: datetime, reason: int) -> bool:
    result = conn.execute(
        update(certificates)
        .where(certificates.c.id == cert_id, certificates.c.revoked_at.is_(None))
        .values(revoked_at=at, revocation_reason=reason)
    )
    return result.rowcount == 1


_STATUS = Prepared(
    select(certificates.c.revoked_at, certificates.c.revocation_reason).where(
        certificates.c.ca_level == bindparam("p_level"),
        certificates.c.serial_hex == bindparam("p_serial"),
    )
)


def revocation_status(
    conn: Connection, ca_level: str, serial_hex: str
) -> tuple[datetime | None, int | None] | None:
    """(revoked at, reason) of the certificate ``ca_level`` issued with that serial, both
    None while it is not revoked; None when that CA issued no such certificate (OCSP)."""
    row = _STATUS.first(conn, {"p_level": ca_level, "p_serial": serial_hex})
    return None if row is None else (row.revoked_at, row.revocation_reason)
