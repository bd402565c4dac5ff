"""revokeCert (RFC 8555 §7.6): by the issuing account, an authorized account, or the cert key."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection

from acmefleet.ca.crl import REVOCATION_REASONS_ACCEPTED
from acmefleet.errors import AcmeError, ProblemType, malformed, unauthorized
from acmefleet.jose.b64 import b64url_decode
from acmefleet.jose.keys import AccountKey
from acmefleet.models import Account, Certificate
from acmefleet.store import audit, upstream_revocations
from acmefleet.store import certificates as cert_store
from acmefleet.store import orders as order_store


def _load_target(conn: Connection, endpoint: str, payload: dict[str, Any]) -> Certificate:
    raw = payload.get("certificate")
    if not isinstance(raw, str):
        raise malformed("'certificate' must be the base64url DER of a certificate")
    try:
        der = b64url_decode(raw)
        parsed = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise malformed("'certificate' is not a DER certificate") from exc
    serial_hex = format(parsed.serial_number, "x")
    stored = cert_store.find_by_serial(conn, serial_hex)
    if stored is None or stored.endpoint != endpoint:
        raise AcmeError(
            ProblemType.MALFORMED, "this endpoint did not issue that certificate", status=404
        )
    leaf = x509.load_pem_x509_certificate(stored.chain_pem.encode())
    if leaf.public_bytes(Encoding.DER) != der:
        raise AcmeError(
            ProblemType.MALFORMED, "this endpoint did not issue that certificate", status=404
        )
    return stored


def _holds_authorizations(
    conn: Connection, account: Account, names: list[str], now: datetime
) -> bool:
    """The account holds valid authorizations for every name of the certificate (§7.6)."""
    for name in names:
        wildcard = name.startswith("*.")
        value = name[2:] if wildcard else name
        if not order_store.holds_valid_authorization(conn, account.id, value, now):
            return False
    return True


def revoke(
    conn: Connection,
    *,
    endpoint: str,
    account: Account | None,
    key: AccountKey,
    payload: dict[str, Any],
    now: datetime,
    source: str | None,
) -> Certificate:
    certificate = _load_target(conn, endpoint, payload)
    reason = payload.get("reason", 0)
    if (
        not isinstance(reason, int)
        or isinstance(reason, bool)
        or reason not in REVOCATION_REASONS_ACCEPTED
    ):
        raise AcmeError(
            ProblemType.BAD_REVOCATION_REASON,
            f"reason must be one of {sorted(REVOCATION_REASONS_ACCEPTED)}",
        )
    if account is not None:
        allowed = account.id == certificate.account_id or _holds_authorizations(
            conn, account, certificate.names, now
        )
        actor = f"acme-account:{account.id}"
    else:
        allowed = hashlib.sha256(key.spki_der).hexdigest() == certificate.spki_sha256
        actor = "certificate-key"
    if not allowed:
        raise unauthorized("the signer may not revoke this certificate")
    if certificate.revoked_at is not None or not cert_store.mark_revoked(
        conn, certificate.id, now, reason
    ):
        raise AcmeError(ProblemType.ALREADY_REVOKED, "the certificate is already revoked")
    # A relayed certificate is the upstream CA's: it must hear of it (the relay tells it).
    upstream_revocations.queue_if_relayed(conn, certificate, reason, now)
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="certificate.revoke",
        target=certificate.serial_hex,
        source=source,
        details={"reason": reason},
    )
    return certificate
