"""ACME Renewal Information (RFC 9773): which certificate a certID names, and its window.

The window a certificate is answered with is ``ca.renewal_info.suggest``: renew now
once revoked, else the one an operator set (``store.renewals``, pulled forward with a
reason), else its default. A certificate relayed from an upstream CA is the upstream's: the
upstream's own window (``policy.upstream_windows``) takes the default's place; with an
operator's window too, the host is told to renew within both (``ca.renewal_info.suggest``).
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from sqlalchemy import Connection

from acmefleet.ca.renewal_info import CertId, CertIdError, Suggestion, Window, cert_id_of, suggest
from acmefleet.ca.renewal_info import parse_cert_id as parse_cert_id_text
from acmefleet.errors import malformed, not_found
from acmefleet.models import Certificate
from acmefleet.store import certificates as cert_store
from acmefleet.store import renewals, upstream_windows
from acmefleet.store.upstream_revocations import upstream_of

# How long a client should wait before asking again (RFC 9773 §4.3): Let Encrypt's six
# hours. A window pulled forward reaches a polling client within this; acmefleet's own
# renew-check on the hosts asks on every run of its timer instead.
RETRY_AFTER = timedelta(hours=6)
MAX_CERT_ID_LENGTH = 128


def parse_cert_id(text: str) -> CertId:
    """``text`` as a certID, or ``malformed`` saying what is wrong with it."""
    if len(text) > MAX_CERT_ID_LENGTH:
        raise malformed("the certID is too long")
    try:
        return parse_cert_id_text(text)
    except CertIdError as exc:
        raise malformed(str(exc)) from exc


def find_certificate(conn: Connection, endpoint: str, cert_id: CertId) -> Certificate | None:
    """The certificate ``endpoint`` issued with that issuer key identifier and serial."""
    cert = cert_store.find_by_serial(conn, cert_id.serial_hex)
    if cert is None or cert.endpoint != endpoint:
        return None
    leaf = x509.load_pem_x509_certificate(cert.chain_pem.encode("ascii"))  # the first PEM
    try:
        actual = cert_id_of(leaf)
    except CertIdError:
        return None
    return cert if actual == cert_id else None


def info_for(conn: Connection, cert: Certificate) -> Suggestion:
    set_here = renewals.window_of(conn, cert.id)
    passed = upstream_windows.window_of(conn, cert.id) if upstream_of(cert) else None
    return suggest(
        int(cert.serial_hex, 16),
        cert.not_before,
        cert.not_after,
        revoked_at=cert.revoked_at,
        chosen=None
        if set_here is None
        else Suggestion(Window(set_here.start, set_here.end), set_here.reason),
        upstream=None if passed is None else Window(passed.start, passed.end),
    )


def renewal_info(conn: Connection, endpoint: str, text: str) -> Suggestion:
    """RFC 9773 §4.2 for the certID ``text`` on ``endpoint``; 404 for a certificate it did
    not issue."""
    cert = find_certificate(conn, endpoint, parse_cert_id(text))
    if cert is None:
        raise not_found("a certificate with this certID")
    return info_for(conn, cert)
