"""OCSP (RFC 6960) answers for the certificates an issuing CA signed.

The issuing CA signs its responses itself (§2.6: no delegated responder to provision and
rotate). A request names a certificate by hashes of its issuer's name and key, with the
hash algorithm the client chose (OpenSSL: SHA-1), and its serial; a request for another
issuer is ``unauthorized`` (§2.3), one that does not parse ``malformedRequest``. A
certificate this CA never issued is ``unknown``. The request's nonce, if any, is echoed
(RFC 9654), so ``openssl ocsp`` can check the answer is fresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from acmefleet.ca._x509 import signing_hash, utc_seconds
from acmefleet.ca.crl import REASON_FLAGS
from acmefleet.ca.hierarchy import Authority

# How long an answer may be relied on (its nextUpdate). The BRs (4.9.10) allow up to ten
# days; one day matches the CRL's, so both say the same by the next day at the latest.
OCSP_VALIDITY = timedelta(days=1)
# RFC 9654 §2.1 (which obsoletes RFC 8954): a nonce of 1 to 128 octets; anything else is
# refused, not echoed.
MAX_NONCE_OCTETS = 128
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class Status:
    """What the database says of one serial of this CA: absent (``None``) is unknown."""

    revoked_at: datetime | None
    reason: int | None


class UnusableRequest(ValueError):
    """A request this responder cannot answer: malformedRequest (RFC 6960 §2.3)."""


class OcspQuery:
    """A parsed request: the serial it asks about, if it is for ``authority``'s certificates.

    One certificate per request, as RFC 5019 profiles it (every client sends one; cryptography
    parses no more); a request for several, or none, is refused, as is a serial that is not
    positive and a CertID hash this responder does not know."""

    def __init__(self, der: bytes) -> None:
        try:
            self.request = ocsp.load_der_ocsp_request(der)
            self.nonce = self._nonce()
            self.algorithm = _HASHES.get(self.request.hash_algorithm.name)
            serial = self.request.serial_number
        except (ValueError, NotImplementedError, UnsupportedAlgorithm) as exc:
            raise UnusableRequest(str(exc)) from exc
        if serial <= 0:
            raise UnusableRequest("a certificate serial is positive")

    def _nonce(self) -> bytes | None:
        try:
            found = self.request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return None
        if not 1 <= len(found) <= MAX_NONCE_OCTETS:
            raise ValueError(f"the nonce must be 1 to {MAX_NONCE_OCTETS} octets")
        return found

    @property
    def serial(self) -> int:
        return self.request.serial_number

    def is_for(self, authority: Authority) -> bool:
        """Whether the request's issuer hashes are those of ``authority``'s issuing CA."""
        algorithm = self.algorithm
        if algorithm is None:
            return False
        issuer = authority.issuer
        name_hash = hashes.Hash(algorithm())
        name_hash.update(issuer.subject.public_bytes())
        # §4.1.1: the hash of the issuer key's BIT STRING content, not of its SPKI (the
        # issuing CAs' keys are EC: the content is the X9.62 point).
        key_bits = issuer.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        key_hash = hashes.Hash(algorithm())
        key_hash.update(key_bits)
        return (
            self.request.issuer_name_hash == name_hash.finalize()
            and self.request.issuer_key_hash == key_hash.finalize()
        )


def refusal(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response (§2.3): malformedRequest, unauthorized, tryLater."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


def answer(authority: Authority, query: OcspQuery, status: Status | None, now: datetime) -> bytes:
    """The signed response for ``query``: good, revoked (with time and reason), or unknown
    (``status`` None: a serial this CA never issued); its CertID is the request's own."""
    this_update = utc_seconds(now)
    if status is None:
        cert_status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
    elif status.revoked_at is None:
        cert_status, revoked_at, reason = ocsp.OCSPCertStatus.GOOD, None, None
    else:
        cert_status = ocsp.OCSPCertStatus.REVOKED
        revoked_at = utc_seconds(status.revoked_at)
        reason = REASON_FLAGS.get(status.reason or 0) if status.reason else None
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=query.request.issuer_name_hash,
        issuer_key_hash=query.request.issuer_key_hash,
        serial_number=query.serial,
        algorithm=query.request.hash_algorithm,
        cert_status=cert_status,
        this_update=this_update,
        next_update=this_update + OCSP_VALIDITY,
        revocation_time=revoked_at,
        revocation_reason=reason,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, authority.issuer)
    if query.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(query.nonce), critical=False)
    response = builder.sign(authority.issuer_key, signing_hash(authority.issuer_key))
    return response.public_bytes(serialization.Encoding.DER)
