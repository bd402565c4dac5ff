"""What a host really serves over TLS: verified chain, names, issuer, serial, expiry."""

from __future__ import annotations

import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from acmefleet.fleet.inventory import FleetHost


@dataclass(frozen=True)
class ServedCertificate:
    host: str
    reachable: bool
    verified: bool
    problem: str | None
    names: tuple[str, ...] = ()
    issuer: str | None = None
    serial: str | None = None
    not_after: datetime | None = None

    def days_left(self, now: datetime) -> int | None:
        return None if self.not_after is None else (self.not_after - now).days

    def is_good(self, expected: tuple[str, ...], min_days: int, now: datetime) -> bool:
        days = self.days_left(now)
        return (
            self.verified
            and set(self.names) == set(expected)
            and days is not None
            and days >= min_days
        )


def _handshake(
    address: str, port: int, name: str, context: ssl.SSLContext, timeout: float
) -> bytes:
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("no certificate")
    return der


def probe(host: FleetHost, ca_bundle: Path | None, timeout: float = 5.0) -> ServedCertificate:
    name = host.names[0]
    verifying = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    problem: str | None = None
    try:
        der = _handshake(host.address, host.tls_port, name, verifying, timeout)
    except ssl.SSLCertVerificationError as exc:
        problem = f"certificate does not verify: {exc.verify_message}"
        lax = ssl.create_default_context()
        lax.check_hostname = False
        lax.verify_mode = ssl.CERT_NONE
        try:
            der = _handshake(host.address, host.tls_port, name, lax, timeout)
        except (OSError, ssl.SSLError) as again:
            return ServedCertificate(host.name, False, False, f"TLS failed: {again}")
    except (OSError, ssl.SSLError) as exc:
        return ServedCertificate(host.name, False, False, f"no TLS on port {host.tls_port}: {exc}")
    leaf = x509.load_der_x509_certificate(der)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = (
            *san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        )
    except x509.ExtensionNotFound:
        names = ()
    cn = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return ServedCertificate(
        host.name,
        True,
        problem is None,
        problem,
        tuple(names),
        str(cn[0].value) if cn else leaf.issuer.rfc4514_string(),
        format(leaf.serial_number, "x"),
        leaf.not_valid_after_utc,
    )


def probe_all(
    hosts: list[FleetHost], ca_bundle: Path | None, parallel: int = 32
) -> dict[str, ServedCertificate]:
    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=min(parallel, len(hosts))) as pool:
        return {r.host: r for r in pool.map(lambda h: probe(h, ca_bundle), hosts)}


def now() -> datetime:
    return datetime.now(UTC)
