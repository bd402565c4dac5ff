from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from acmefleet.ca.errors import CaError
from acmefleet.ca.hierarchy import TRUST_LEVELS, create_hierarchy, load_authority
from acmefleet.clock import FixedClock


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_trust_levels() -> None:
    assert TRUST_LEVELS == ("private", "public")


def test_create_and_load(tmp_path: Path, clock: FixedClock) -> None:
    ca_dir = tmp_path / "ca"
    create_hierarchy(ca_dir, "private", clock=clock)
    level = ca_dir / "private"
    assert sorted(p.name for p in ca_dir.iterdir()) == ["private"]  # no staging leftovers
    assert sorted(p.name for p in level.iterdir()) == [
        "issuer.key",
        "issuer.pem",
        "root.key",
        "root.pem",
    ]
    assert _mode(ca_dir) == 0o700
    assert _mode(level) == 0o700
    assert _mode(level / "root.key") == _mode(level / "issuer.key") == 0o600
    assert _mode(level / "root.pem") == _mode(level / "issuer.pem") == 0o644
    assert b"ENCRYPTED" not in (level / "issuer.key").read_bytes()

    authority = load_authority(ca_dir, "private")
    root, issuer = authority.root, authority.issuer
    assert authority.level == "private"
    assert authority.chain_pem == (level / "issuer.pem").read_bytes()
    assert authority.root_pem == (level / "root.pem").read_bytes()
    assert x509.load_der_x509_certificate(authority.issuer_der) == issuer
    assert authority.issuer_key.public_key() == issuer.public_key()

    root_key, issuer_key = root.public_key(), issuer.public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
    assert (root_key.curve.name, issuer_key.curve.name) == ("secp384r1", "secp256r1")
    assert root.subject.rfc4514_string() == "CN=acmefleet Private Root CA,O=acmefleet"
    assert issuer.subject.rfc4514_string() == "CN=acmefleet Private Issuing CA,O=acmefleet"
    root.verify_directly_issued_by(root)
    issuer.verify_directly_issued_by(root)

    root_bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca and root_bc.value.path_length is None
    issuer_bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints)
    assert issuer_bc.critical and issuer_bc.value.ca and issuer_bc.value.path_length == 0
    root_ku = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert root_ku.critical and root_ku.value.key_cert_sign and root_ku.value.crl_sign
    assert not root_ku.value.digital_signature
    issuer_ku = issuer.extensions.get_extension_for_class(x509.KeyUsage)
    assert issuer_ku.critical and issuer_ku.value.digital_signature
    assert issuer_ku.value.key_cert_sign and issuer_ku.value.crl_sign
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = issuer.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)

    now = clock.now()
    assert root.not_valid_before_utc <= now <= issuer.not_valid_after_utc
    assert timedelta(days=3650) <= root.not_valid_after_utc - now <= timedelta(days=3660)
    assert timedelta(days=1825) <= issuer.not_valid_after_utc - now <= timedelta(days=1830)


def test_custom_prefix(tmp_path: Path, clock: FixedClock) -> None:
    create_hierarchy(tmp_path, "public", clock=clock, common_name_prefix="Example Corp")
    authority = load_authority(tmp_path, "public")
    assert (
        authority.root.subject.rfc4514_string() == "CN=Example Corp Public Root CA,O=Example Corp"
    )


def test_passphrase(tmp_path: Path, clock: FixedClock) -> None:
    create_hierarchy(tmp_path, "public", clock=clock, passphrase=b"s3cret")
    for name in ("root.key", "issuer.key"):
        assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "public" / name).read_bytes()
    assert load_authority(tmp_path, "public", b"s3cret").level == "public"
    with pytest.raises(CaError, match="wrong passphrase"):
        load_authority(tmp_path, "public", b"wrong")
    with pytest.raises(CaError, match="passphrase is required"):
        load_authority(tmp_path, "public")


def test_passphrase_for_unencrypted_key(tmp_path: Path, clock: FixedClock) -> None:
    create_hierarchy(tmp_path, "public", clock=clock)
    with pytest.raises(CaError, match="not encrypted"):
        load_authority(tmp_path, "public", b"s3cret")


def test_empty_passphrase_refused(tmp_path: Path, clock: FixedClock) -> None:
    with pytest.raises(CaError, match="must not be empty"):
        create_hierarchy(tmp_path, "public", clock=clock, passphrase=b"")
    assert not (tmp_path / "public").exists()


def test_refuses_overwrite(tmp_path: Path, clock: FixedClock) -> None:
    create_hierarchy(tmp_path, "private", clock=clock)
    before = {p.name: p.read_bytes() for p in (tmp_path / "private").iterdir()}
    with pytest.raises(CaError, match="refusing to overwrite"):
        create_hierarchy(tmp_path, "private", clock=clock)
    assert {p.name: p.read_bytes() for p in (tmp_path / "private").iterdir()} == before
    create_hierarchy(tmp_path, "public", clock=clock)  # the other level is independent


def test_unknown_level(tmp_path: Path, clock: FixedClock) -> None:
    with pytest.raises(CaError, match="unknown trust level"):
        create_hierarchy(tmp_path, "secret", clock=clock)
    with pytest.raises(CaError, match="unknown trust level"):
        load_authority(tmp_path, "../etc")


def test_missing_files(tmp_path: Path, clock: FixedClock) -> None:
    with pytest.raises(CaError, match="no private CA hierarchy"):
        load_authority(tmp_path, "private")
    create_hierarchy(tmp_path, "private", clock=clock)
    (tmp_path / "private" / "issuer.key").unlink()
    with pytest.raises(CaError, match=r"issuer\.key"):
        load_authority(tmp_path, "private")


def test_mismatched_key(tmp_path: Path, clock: FixedClock) -> None:
    create_hierarchy(tmp_path, "private", clock=clock)
    create_hierarchy(tmp_path, "public", clock=clock)
    (tmp_path / "private" / "issuer.key").write_bytes(
        (tmp_path / "public" / "issuer.key").read_bytes()
    )
    with pytest.raises(CaError, match="does not match"):
        load_authority(tmp_path, "private")
