from __future__ import annotations

import ipaddress
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from acmefleet.ca.bundle import write_bundle
from acmefleet.ca.errors import CaError
from acmefleet.ca.hierarchy import Authority
from acmefleet.ca.tls import issue_server_tls
from acmefleet.clock import FixedClock


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_server_tls(tmp_path: Path, private_ca: Authority, clock: FixedClock) -> None:
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    names = ["ACME.internal.example", "127.0.0.1", "::1", "localhost", "acme.internal.example"]
    issue_server_tls(private_ca, names, cert_path, key_path, clock=clock)
    assert _mode(key_path) == 0o600
    assert _mode(cert_path) == 0o644

    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    leaf, issuer = x509.load_pem_x509_certificates(cert_path.read_bytes())
    assert issuer == private_ca.issuer
    assert leaf.public_key() == key.public_key()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["acme.internal.example", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    validity = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert validity == timedelta(days=397) - timedelta(seconds=1)

    verifier = PolicyBuilder().store(Store([private_ca.root])).time(clock.now())
    for name in (
        x509.DNSName("acme.internal.example"),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ):
        server = verifier.build_server_verifier(name)
        assert server.verify(leaf, [issuer])[-1] == private_ca.root

    old_key = key_path.read_bytes()
    issue_server_tls(private_ca, ["acme.internal.example"], cert_path, key_path, clock=clock)
    assert key_path.read_bytes() != old_key  # rotation replaces both files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.key", "server.pem"]


@pytest.mark.parametrize(
    "names",
    [
        [],
        ["bad name"],
        ["bücher.example"],
        ["-lead.example"],
        ["acme\n.example"],
        ["acme\n"],
        ["\u212a.example"],
    ],
)
def test_server_tls_bad_names(
    tmp_path: Path, private_ca: Authority, clock: FixedClock, names: list[str]
) -> None:
    with pytest.raises(CaError):
        issue_server_tls(private_ca, names, tmp_path / "c.pem", tmp_path / "k.pem", clock=clock)
    assert list(tmp_path.iterdir()) == []


def test_bundle(tmp_path: Path, ca_dir: Path, public_ca: Authority, private_ca: Authority) -> None:
    out = tmp_path / "roots.pem"
    old_umask = os.umask(0o077)
    try:
        write_bundle(ca_dir, ["public", "private", "public"], out)
    finally:
        os.umask(old_umask)
    assert _mode(out) == 0o644
    assert out.read_bytes() == public_ca.root_pem + private_ca.root_pem
    assert x509.load_pem_x509_certificates(out.read_bytes()) == [public_ca.root, private_ca.root]


def test_bundle_refusals(tmp_path: Path, ca_dir: Path) -> None:
    with pytest.raises(CaError, match="at least one"):
        write_bundle(ca_dir, [], tmp_path / "roots.pem")
    with pytest.raises(CaError, match=r"root\.pem"):
        write_bundle(tmp_path, ["public"], tmp_path / "roots.pem")
    assert not (tmp_path / "roots.pem").exists()


def test_server_tls_accepts_single_label_host_names(
    tmp_path: Path, private_ca: Authority, clock: FixedClock
) -> None:
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    issue_server_tls(private_ca, ["controller", "10.77.0.1"], cert_path, key_path, clock=clock)
    leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["controller"]
