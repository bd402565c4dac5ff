"""What a host really serves over TLS: verified chain, names, issuer, serial, expiry.

The probe itself is the collection's (plugins/module_utils/tls_probe.py, reached here as
acmefleet.fleet.tls_probe), so the module tls_certificate and the roll-out judge alike.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from acmefleet.fleet.inventory import FleetHost, InventoryError
from acmefleet.fleet.tls_probe import ProbeError, served_leaf


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
    leaf_der: bytes = b""

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


def probe(host: FleetHost, ca_bundle: Path | None, timeout: float = 5.0) -> ServedCertificate:
    """The certificate served on the host's TLS port for its first name (as SNI)."""
    try:
        leaf = served_leaf(
            host.address,
            host.tls_port,
            host.names[0],
            str(ca_bundle) if ca_bundle else None,
            timeout,
        )
    except ProbeError as exc:
        problem = f"TLS failed: {exc}" if exc.retrying else f"no TLS on port {host.tls_port}: {exc}"
        return ServedCertificate(host=host.name, reachable=False, verified=False, problem=problem)
    return ServedCertificate(
        host=host.name,
        reachable=True,
        verified=leaf.verified,
        problem=None if leaf.verified else f"certificate does not verify: {leaf.verify_error}",
        names=leaf.names,
        issuer=leaf.issuer,
        serial=leaf.serial,
        not_after=leaf.not_after,
        leaf_der=leaf.der,
    )


def probe_all(
    hosts: list[FleetHost], ca_bundle: Path | None, parallel: int = 32
) -> dict[str, ServedCertificate]:
    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=min(parallel, len(hosts))) as pool:
        return {r.host: r for r in pool.map(lambda h: probe(h, ca_bundle), hosts)}


def hosts_bundle(server_bundle: Path | None, trust: Path | None, directory: Path) -> Path | None:
    """What the hosts' certificates are verified against: the ACME server's own CAs, and
    ``trust`` (an upstream CA's root, or the system's bundle) when a host's endpoint relays
    to another CA. Both in one file in ``directory`` (the state directory, 0700), replaced
    whole (another run reading it never sees half); None: the system's trust store."""
    if trust is None:
        return server_bundle
    if not trust.is_file():
        raise InventoryError(f"trust bundle {trust}: no such file")
    base = server_bundle or _system_bundle()
    parts = [p.read_text() for p in (base, trust) if p is not None]
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    combined = directory / "hosts-trust.pem"
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".hosts-trust-", suffix=".pem")
    with os.fdopen(handle, "w") as out:
        out.write("\n".join(part.rstrip("\n") for part in parts) + "\n")
    os.replace(temporary, combined)  # a link there is replaced, never followed
    return combined


def _system_bundle() -> Path | None:
    cafile = ssl.get_default_verify_paths().cafile
    return Path(cafile) if cafile else None


def now() -> datetime:
    return datetime.now(UTC)
