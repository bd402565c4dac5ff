"""Small X.509 helpers shared by the CA modules."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from acmefleet.ca.errors import CaError

SERIAL_OCTETS = 20


def random_serial() -> int:
    """A positive 20-octet serial: first octet 0x01-0x7f, 159+ bits of entropy."""
    raw = bytearray(os.urandom(SERIAL_OCTETS))
    raw[0] = (raw[0] & 0x7F) or 0x01
    return int.from_bytes(raw, "big")


def serial_hex(serial: int) -> str:
    """Lower-case hex, no colons, as stored and compared everywhere."""
    return format(serial, "x")


def signing_hash(key: ec.EllipticCurvePrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """The digest matching the issuing key's curve strength."""
    return hashes.SHA384() if key.curve.key_size > 256 else hashes.SHA256()


def utc_seconds(moment: datetime) -> datetime:
    """``moment`` as aware UTC truncated to whole seconds (what X.509 Time encodes)."""
    if moment.tzinfo is None:
        raise CaError(f"naive datetime {moment.isoformat()} where aware UTC is required")
    return moment.astimezone(UTC).replace(microsecond=0)


def leaf_key_usage(*, key_encipherment: bool) -> x509.KeyUsage:
    """digitalSignature, plus keyEncipherment for RSA (TLS 1.2 RSA key exchange)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
