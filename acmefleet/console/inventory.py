"""Accounts and certificates as the console sees them: filter, show, deactivate, revoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.ca.crl import REVOCATION_REASONS_ACCEPTED
from acmefleet.console.errors import Conflict, ConsoleError, NotFound
from acmefleet.models import Account, Certificate
from acmefleet.store import accounts as account_store
from acmefleet.store import audit, upstream_revocations
from acmefleet.store import certificates as cert_store


def get_account(conn: Connection, account_id: str) -> Account:
    account = account_store.get_account(conn, account_id)
    if account is None:
        raise NotFound(f"no account {account_id!r}")
    return account


def deactivate_account(
    conn: Connection, account_id: str, *, actor: str, now: datetime, source: str | None = None
) -> Account:
    account = get_account(conn, account_id)
    if account.status != "valid":
        raise Conflict(f"the account is already {account.status}")
    account_store.update_account(conn, account.id, status="deactivated")
    audit.record(
        conn, at=now, actor=actor, action="account.deactivate", target=account.id, source=source
    )
    return get_account(conn, account.id)


@dataclass(frozen=True)
class CertificateFilter:
    org_id: int | None = None
    endpoint: str | None = None
    name: str | None = None
    expiring_within_days: int | None = None
    revoked: bool | None = None

    def matches(self, cert: Certificate, now: datetime) -> bool:
        if self.org_id is not None and cert.org_id != self.org_id:
            return False
        if self.endpoint is not None and cert.endpoint != self.endpoint:
            return False
        if self.name is not None and not any(self.name.lower() in n for n in cert.names):
            return False
        if self.expiring_within_days is not None and (
            cert.not_after > now + timedelta(days=self.expiring_within_days)
            or cert.not_after <= now
        ):
            return False
        return self.revoked is None or (cert.revoked_at is not None) == self.revoked


def list_certificates(conn: Connection, flt: CertificateFilter, now: datetime) -> list[Certificate]:
    return [c for c in cert_store.list_certificates(conn) if flt.matches(c, now)]


def get_certificate(conn: Connection, cert_id: str) -> Certificate:
    cert = cert_store.get_certificate(conn, cert_id)
    if cert is None:
        raise NotFound(f"no certificate {cert_id!r}")
    return cert


def revoke_certificate(
    conn: Connection,
    cert_id: str,
    *,
    reason: int,
    actor: str,
    now: datetime,
    source: str | None = None,
) -> Certificate:
    cert = get_certificate(conn, cert_id)
    if reason not in REVOCATION_REASONS_ACCEPTED:
        raise ConsoleError(f"reason must be one of {sorted(REVOCATION_REASONS_ACCEPTED)}")
    if not cert_store.mark_revoked(conn, cert.id, now, reason):
        raise Conflict("the certificate is already revoked")
    # A relayed certificate: its upstream CA is told by the server's relay.
    upstream_revocations.queue_if_relayed(conn, cert, reason, now)
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="certificate.revoke",
        target=cert.serial_hex,
        source=source,
        details={"reason": reason},
    )
    return get_certificate(conn, cert.id)
