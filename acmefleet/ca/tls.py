"""The ACME server's own TLS serving certificate, issued from a local authority."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acmefleet.ca._files import PRIVATE_FILE, PUBLIC_FILE, write_atomic
from acmefleet.ca._x509 import leaf_key_usage, random_serial, signing_hash, utc_seconds
from acmefleet.ca.errors import CaError
from acmefleet.ca.hierarchy import Authority
from acmefleet.ca.issuer import BACKDATE, MAX_CN_LENGTH, ONE_SECOND
from acmefleet.clock import Clock

SERVER_TLS_VALIDITY = timedelta(days=397)


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")  # fullmatch: "$" allows a "\n"


def _general_name(name: str) -> x509.GeneralName:
    """An IP address if ``name`` parses as one, else a DNS name (``localhost`` allowed)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    host = name.lower().rstrip(".")
    labels = host.split(".")
    if (
        not host
        or not name.isascii()  # before lower(): the Kelvin sign lower-cases to "k"
        or len(host) > 253
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
    ):
        raise CaError(f"bad server certificate name: {name!r} is not a host name")
    return x509.DNSName(host)


def issue_server_tls(
    authority: Authority,
    names: Sequence[str],
    cert_path: Path,
    key_path: Path,
    *,
    clock: Clock,
) -> None:
    """Write a fresh P-256 key (0600) and its leaf + issuer chain for ``names``."""
    if not names:
        raise CaError("the server certificate needs at least one name")
    san = list(dict.fromkeys(_general_name(name) for name in names))
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = authority.issuer
    not_before = max(utc_seconds(clock.now() - BACKDATE), issuer.not_valid_before_utc)
    not_after = min(not_before + SERVER_TLS_VALIDITY - ONE_SECOND, issuer.not_valid_after_utc)
    first_dns = next((n.value for n in san if isinstance(n, x509.DNSName)), None)
    if first_dns and len(first_dns) <= MAX_CN_LENGTH:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first_dns)])
    else:
        subject = x509.Name([])
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .issuer_name(issuer.subject)
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(leaf_key_usage(key_encipherment=False), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=not subject)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(authority.issuer_key, signing_hash(authority.issuer_key))
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(key_path, key_pem, PRIVATE_FILE)
    write_atomic(
        cert_path, cert.public_bytes(serialization.Encoding.PEM) + authority.chain_pem, PUBLIC_FILE
    )
