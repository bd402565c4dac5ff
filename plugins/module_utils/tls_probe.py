# Copyright: acmefleet developers
# Apache License 2.0
"""Look at the certificate a TLS server really serves: chain, names, issuer, expiry.

acmefleet's one TLS probe. The module tls_certificate imports it as module_utils, so it
travels with the module and imports only the standard library and cryptography. The
orchestrator (acmefleet.fleet.tls) imports the same file as ``acmefleet.fleet.tls_probe``:
that path is a link to this file, and building the acmefleet package copies it in.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID


class ProbeError(OSError):
    """No TLS handshake completed; ``retrying``: it was the second, unverified one that failed.

    Its text is that of the error that stopped the handshake.
    """

    def __init__(self, cause: OSError, *, retrying: bool) -> None:
        super().__init__(str(cause))
        self.retrying = retrying


@dataclass(frozen=True)
class ServedLeaf:
    """The certificate a server sent, and why its chain does not verify (None: it does)."""

    verify_error: str | None
    names: tuple[str, ...]
    issuer: str
    serial: str
    not_after: datetime
    der: bytes = b""

    @property
    def verified(self) -> bool:
        return self.verify_error is None


def _handshake(
    address: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float
) -> bytes:
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return der


def _describe(der: bytes, verify_error: str | None) -> ServedLeaf:
    leaf = x509.load_der_x509_certificate(der)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names: tuple[str, ...] = (
            *san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        )
    except x509.ExtensionNotFound:
        names = ()
    issuer_cn = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return ServedLeaf(
        verify_error=verify_error,
        names=names,
        issuer=str(issuer_cn[0].value) if issuer_cn else leaf.issuer.rfc4514_string(),
        serial=format(leaf.serial_number, "x"),
        not_after=leaf.not_valid_after_utc,
        der=der,
    )


def served_leaf(
    address: str, port: int, server_name: str, ca_bundle: str | None, timeout: float
) -> ServedLeaf:
    """Verify the chain for ``server_name`` (SNI too) against ``ca_bundle``, then describe it.

    ``ca_bundle`` None means the system's trust store. The verifying handshake gives the
    verdict and, when the chain verifies, the certificate; only when it does not verify
    does a second handshake, without verification, fetch what the server sends. Raises
    ProbeError when no handshake completes (OSError when ``ca_bundle`` cannot be read).
    """
    verifying = ssl.create_default_context(cafile=ca_bundle)
    verify_error: str | None = None
    try:
        der = _handshake(address, port, server_name, verifying, timeout)
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        try:
            der = _handshake(address, port, server_name, unverified, timeout)
        except OSError as again:
            raise ProbeError(again, retrying=True) from again
    except OSError as exc:
        raise ProbeError(exc, retrying=False) from exc
    return _describe(der, verify_error)


def probe(
    address: str, port: int, server_name: str, ca_bundle: str | None, timeout: float = 10.0
) -> dict[str, Any]:
    """served_leaf() as the module returns it: plain values, and the days left from now."""
    leaf = served_leaf(address, port, server_name, ca_bundle, timeout)
    remaining = leaf.not_after - datetime.now(timezone.utc)
    return {
        "verified": leaf.verified,
        "verify_error": leaf.verify_error,
        "names": list(leaf.names),
        "issuer": leaf.issuer,
        "serial": leaf.serial,
        "not_after": leaf.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "days_left": remaining.days,
    }
