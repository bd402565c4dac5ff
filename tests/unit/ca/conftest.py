"""Shared CA fixtures: one hierarchy per session (key generation is the slow part)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from acmefleet.ca.hierarchy import Authority, create_hierarchy, load_authority
from acmefleet.ca.issuer import EmbeddedIssuer
from acmefleet.clock import FixedClock

PKI_BASE = "http://acme.example.net:8080"
CsrFactory = Callable[..., bytes]


@pytest.fixture(scope="session")
def pki_base_url() -> str:
    return PKI_BASE


@pytest.fixture(scope="session")
def created_at() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def clock(created_at: datetime) -> FixedClock:
    return FixedClock(created_at)


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory: pytest.TempPathFactory, created_at: datetime) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca"
    for level in ("private", "public"):
        create_hierarchy(path, level, clock=FixedClock(created_at))
    return path


@pytest.fixture(scope="session")
def public_ca(ca_dir: Path) -> Authority:
    return load_authority(ca_dir, "public")


@pytest.fixture(scope="session")
def private_ca(ca_dir: Path) -> Authority:
    return load_authority(ca_dir, "private")


@pytest.fixture
def public_issuer(public_ca: Authority, clock: FixedClock) -> EmbeddedIssuer:
    return EmbeddedIssuer(public_ca, clock=clock, pki_base_url=PKI_BASE)


@pytest.fixture
def private_issuer(private_ca: Authority, clock: FixedClock) -> EmbeddedIssuer:
    return EmbeddedIssuer(private_ca, clock=clock, pki_base_url=PKI_BASE + "/")


@pytest.fixture(scope="session")
def p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def p384_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="session")
def rsa2048_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def build_csr(
    key: CertificateIssuerPrivateKeyTypes,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    *,
    cn: str | Sequence[str] | None = None,
    algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
    extra: Sequence[x509.GeneralName] = (),
) -> bytes:
    """A DER CSR; ``algorithm`` defaults to SHA-256 (none for EdDSA)."""
    cns = [cn] if isinstance(cn, str) else list(cn or ())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, c) for c in cns])
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    names += extra
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if algorithm is None and not isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        algorithm = hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


@pytest.fixture
def make_csr() -> CsrFactory:
    return build_csr
