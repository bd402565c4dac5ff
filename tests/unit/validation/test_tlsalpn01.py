"""tls-alpn-01's pure part: what makes a validation certificate right (RFC 8737 §3)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.validation.tlsalpn01 import acme_identifier_value, check_certificate
from tests.support.tls_alpn import validation_certificate

NAME = "www.example.org"
KEY_AUTHORIZATION = "token.thumbprint"


def _der(**breakage: Any) -> bytes:
    pem, _key = validation_certificate(NAME, KEY_AUTHORIZATION, **breakage)
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_the_extension_value_is_a_der_octet_string_of_the_digest() -> None:
    value = acme_identifier_value(KEY_AUTHORIZATION)
    assert value[:2] == b"\x04\x20"  # OCTET STRING, 32 bytes
    assert value[2:] == hashlib.sha256(KEY_AUTHORIZATION.encode()).digest()


def test_a_right_certificate_passes() -> None:
    check_certificate(_der(), NAME, KEY_AUTHORIZATION)
    check_certificate(_der(), NAME.upper(), KEY_AUTHORIZATION)  # DNS names are case-blind


@pytest.mark.parametrize(
    ("breakage", "words"),
    [
        ({"digest_of": "other.thumbprint"}, "expected digest"),
        ({"critical": False}, "not marked critical"),
        ({"extension": False}, "no acmeIdentifier"),
        ({"sans": ["other.example.org"]}, "exactly"),
        ({"sans": [NAME, "more.example.org"]}, "exactly"),
    ],
)
def test_each_broken_rule_is_unauthorized(breakage: dict[str, Any], words: str) -> None:
    with pytest.raises(AcmeError) as caught:
        check_certificate(_der(**breakage), NAME, KEY_AUTHORIZATION)
    assert caught.value.type is ProblemType.UNAUTHORIZED
    assert words in caught.value.detail


def test_for_another_key_authorization_it_fails() -> None:
    with pytest.raises(AcmeError, match="expected digest"):
        check_certificate(_der(), NAME, "token.another-thumbprint")


def test_garbage_is_not_a_certificate() -> None:
    with pytest.raises(AcmeError, match="could not be parsed"):
        check_certificate(b"\x30\x03\x02\x01\x00", NAME, KEY_AUTHORIZATION)
