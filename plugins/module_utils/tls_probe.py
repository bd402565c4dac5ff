# Copyright: acmefleet developers
# Apache License 2.0
"""Look at the certificate a TLS server really serves: chain, names, issuer, expiry."""

from __future__ import annotations

import socket
import ssl
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID


def _fetch_der(address: str, port: int, server_name: str, timeout: float) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return der


def _verify(
    address: str, port: int, server_name: str, ca_bundle: str | None, timeout: float
) -> str | None:
    """None if the chain verifies to the bundle for server_name, else the reason."""
    context = ssl.create_default_context(cafile=ca_bundle)
    try:
        with (
            socket.create_connection((address, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name),
        ):
            return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)


def probe(
    address: str, port: int, server_name: str, ca_bundle: str | None, timeout: float = 10.0
) -> dict[str, Any]:
    """Handshake twice: once verifying (the verdict), once not (to describe what is served)."""
    problem = _verify(address, port, server_name, ca_bundle, timeout)
    leaf = x509.load_der_x509_certificate(_fetch_der(address, port, server_name, timeout))
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [
            *san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        ]
    except x509.ExtensionNotFound:
        names = []
    issuer_cn = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    not_after = leaf.not_valid_after_utc
    remaining = not_after - datetime.now(timezone.utc)
    return {
        "verified": problem is None,
        "verify_error": problem,
        "names": names,
        "issuer": str(issuer_cn[0].value) if issuer_cn else leaf.issuer.rfc4514_string(),
        "serial": format(leaf.serial_number, "x"),
        "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "days_left": remaining.days,
    }
