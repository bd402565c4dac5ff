"""CRL generation for an issuing CA (RFC 5280 §5)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from acmefleet.ca._x509 import signing_hash, utc_seconds
from acmefleet.ca.errors import CaError
from acmefleet.ca.hierarchy import Authority

# RFC 5280 §5.3.1 CRLReason codes (7 is unused).
REASON_FLAGS: dict[int, x509.ReasonFlags] = {
    0: x509.ReasonFlags.unspecified,
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}
# What ACME revokeCert accepts for subscriber certificates (CA/B Forum BR §7.2.2).
REVOCATION_REASONS_ACCEPTED = frozenset({0, 1, 3, 4, 5, 9})


@dataclass(frozen=True)
class RevokedEntry:
    serial_hex: str
    revoked_at: datetime
    reason: int


def _revoked(entry: RevokedEntry) -> x509.RevokedCertificate:
    if entry.reason not in REASON_FLAGS:
        raise CaError(f"unknown CRL reason code {entry.reason}")
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(int(entry.serial_hex, 16))
        .revocation_date(utc_seconds(entry.revoked_at))
    )
    if entry.reason:  # unspecified is expressed by omitting the extension
        builder = builder.add_extension(x509.CRLReason(REASON_FLAGS[entry.reason]), critical=False)
    return builder.build()


def build_crl(
    authority: Authority,
    entries: Iterable[RevokedEntry],
    *,
    this_update: datetime,
    next_update: datetime,
    crl_number: int,
) -> bytes:
    """A complete DER CRL for the certificates ``authority`` issued and revoked."""
    if next_update <= this_update:
        raise CaError("nextUpdate must be later than thisUpdate")
    if not 0 <= crl_number < 1 << 159:  # RFC 5280 §5.2.3: at most 20 octets
        raise CaError(f"CRL number {crl_number} is out of range")
    ski = authority.issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=authority.issuer.subject,
        extensions=[
            x509.Extension(
                x509.AuthorityKeyIdentifier.oid,
                False,
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            ),
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(crl_number)),
        ],
        revoked_certificates=[_revoked(entry) for entry in entries],  # one list, not O(n^2)
    )
    builder = builder.last_update(utc_seconds(this_update)).next_update(utc_seconds(next_update))
    crl = builder.sign(authority.issuer_key, signing_hash(authority.issuer_key))
    return crl.public_bytes(serialization.Encoding.DER)
