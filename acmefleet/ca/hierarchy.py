"""Root and issuing CA per trust level: creation on disk and loading into memory."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acmefleet.ca._files import PRIVATE_FILE, PUBLIC_FILE, make_private_dir, write_atomic
from acmefleet.ca._x509 import random_serial, signing_hash, utc_seconds
from acmefleet.ca.errors import CaError
from acmefleet.clock import Clock

TRUST_LEVELS = ("private", "public")
ROOT_VALIDITY = timedelta(days=3652)
ISSUER_VALIDITY = timedelta(days=1826)
CA_BACKDATE = timedelta(hours=1)  # tolerate clock skew in relying parties
ROOT_CERT, ROOT_KEY, ISSUER_CERT, ISSUER_KEY = "root.pem", "root.key", "issuer.pem", "issuer.key"
_PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Authority:
    """A loaded issuing CA; the key stays in memory so signing never touches disk."""

    level: str
    root: x509.Certificate
    issuer: x509.Certificate
    issuer_key: ec.EllipticCurvePrivateKey = field(repr=False)
    chain_pem: bytes
    root_pem: bytes

    @property
    def issuer_der(self) -> bytes:
        """The issuing certificate in DER (served as ``issuer.cer``)."""
        return self.issuer.public_bytes(serialization.Encoding.DER)


def level_dir(ca_dir: Path, level: str) -> Path:
    if level not in TRUST_LEVELS:
        raise CaError(f"unknown trust level {level!r}; expected one of {', '.join(TRUST_LEVELS)}")
    return ca_dir / level


def _name(prefix: str, level: str, role: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, prefix),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix} {level.capitalize()} {role} CA"),
        ]
    )


def _ca_usage(*, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    if passphrase is None:
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    elif passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
    else:
        raise CaError("the CA key passphrase must not be empty")
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, encryption)


def create_hierarchy(
    ca_dir: Path,
    level: str,
    *,
    clock: Clock,
    common_name_prefix: str = "acmefleet",
    passphrase: bytes | None = None,
) -> None:
    """Create a P-384 root and a P-256 issuing CA under ``ca_dir/<level>/``."""
    target = level_dir(ca_dir, level)
    if target.exists():
        raise CaError(f"refusing to overwrite the existing {level} CA hierarchy at {target}")
    root_key = ec.generate_private_key(ec.SECP384R1())
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(common_name_prefix, level, "Root")
    now = utc_seconds(clock.now() - CA_BACKDATE)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(digital_signature=False), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, signing_hash(root_key))
    )
    issuer = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name_prefix, level, "Issuing"))
        .issuer_name(root_name)
        .public_key(issuer_key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now)
        .not_valid_after(now + ISSUER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .sign(root_key, signing_hash(root_key))
    )
    files = {
        ROOT_KEY: (_key_pem(root_key, passphrase), PRIVATE_FILE),
        ISSUER_KEY: (_key_pem(issuer_key, passphrase), PRIVATE_FILE),
        ROOT_CERT: (root.public_bytes(_PEM), PUBLIC_FILE),
        ISSUER_CERT: (issuer.public_bytes(_PEM), PUBLIC_FILE),
    }
    make_private_dir(ca_dir)
    staging = Path(tempfile.mkdtemp(dir=ca_dir, prefix=f".{level}."))  # 0700
    try:
        for filename, (data, mode) in files.items():
            write_atomic(staging / filename, data, mode)
        staging.rename(target)  # fails if target appeared meanwhile
    except OSError as exc:
        raise CaError(f"cannot create the {level} CA hierarchy at {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CaError(f"cannot read CA file {path}: {exc.strerror or exc}") from exc


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path))
    except ValueError as exc:
        raise CaError(f"{path} is not a PEM certificate: {exc}") from exc


def load_root(ca_dir: Path, level: str) -> x509.Certificate:
    """The root certificate of ``level`` (public; no key is read)."""
    return _load_cert(level_dir(ca_dir, level) / ROOT_CERT)


def load_authority(ca_dir: Path, level: str, passphrase: bytes | None = None) -> Authority:
    """Load the ``level`` issuing CA (certificate chain and issuing key; not the root key)."""
    base = level_dir(ca_dir, level)
    if not base.is_dir():
        raise CaError(f"no {level} CA hierarchy at {base}; create it first")
    root = _load_cert(base / ROOT_CERT)
    issuer = _load_cert(base / ISSUER_CERT)
    key_path = base / ISSUER_KEY
    try:
        key = serialization.load_pem_private_key(_read(key_path), passphrase)
    except TypeError as exc:  # encrypted without passphrase, or the reverse
        state = "encrypted; a passphrase is required" if passphrase is None else "not encrypted"
        raise CaError(f"{key_path} is {state}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CaError(f"cannot decrypt {key_path}: wrong passphrase or corrupt key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{key_path} is not an ECDSA key")
    if key.public_key() != issuer.public_key():
        raise CaError(f"{key_path} does not match {base / ISSUER_CERT}")
    try:
        issuer.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CaError(f"{base / ISSUER_CERT} is not issued by {base / ROOT_CERT}") from exc
    return Authority(level, root, issuer, key, issuer.public_bytes(_PEM), root.public_bytes(_PEM))
