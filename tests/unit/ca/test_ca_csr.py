from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from acmefleet.ca.csr import check_csr
from acmefleet.ca.errors import CsrError
from acmefleet.identifiers import Identifier

CsrFactory = Callable[..., bytes]

WWW = Identifier("dns", "www.example.com")
APEX = Identifier("dns", "example.com")
ORDER = (WWW, APEX)


def _spki(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("key_fixture", ["rsa2048_key", "p256_key", "p384_key"])
def test_good_csr(key_fixture: str, make_csr: CsrFactory, request: pytest.FixtureRequest) -> None:
    key = request.getfixturevalue(key_fixture)
    checked = check_csr(make_csr(key, ["WWW.Example.com", "example.com"]), ORDER)
    # The CSR's order is kept (clients file certificates under their first name).
    assert checked.dns_names == ("www.example.com", "example.com")
    assert checked.ip_addresses == ()
    assert checked.public_key == key.public_key()


def test_ips_are_normalised(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    order = [Identifier("ip", "2001:0db8:0:0::1"), Identifier("ip", "192.0.2.7"), APEX]
    checked = check_csr(make_csr(p256_key, ["example.com"], ["2001:db8::1", "192.0.2.7"]), order)
    assert checked.ip_addresses == ("2001:db8::1", "192.0.2.7")
    assert checked.dns_names == ("example.com",)


def test_cn_among_san(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    der = make_csr(p256_key, ["www.example.com", "example.com"], cn="Example.com")
    assert check_csr(der, ORDER).dns_names == ("example.com", "www.example.com")


def test_cn_only(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    assert check_csr(make_csr(p256_key, cn="www.example.com"), [WWW]).dns_names == (WWW.value,)
    ip = Identifier("ip", "192.0.2.1")
    assert check_csr(make_csr(p256_key, cn="192.0.2.1"), [ip]).ip_addresses == (ip.value,)


def test_wildcard(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    order = [Identifier("dns", "*.example.com"), APEX]
    checked = check_csr(make_csr(p256_key, ["*.example.com", "example.com"]), order)
    assert checked.dns_names == ("*.example.com", "example.com")


def test_sha384_signature_ok(p384_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    check_csr(make_csr(p384_key, ["example.com"], algorithm=hashes.SHA384()), [APEX])


@pytest.mark.parametrize(
    ("make_key", "message"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "RSA key of 1024 bits"),
        (lambda: rsa.generate_private_key(3, 2048), "RSA public exponent 3"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "curve P-521"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "curve secp256k1"),
        (ed25519.Ed25519PrivateKey.generate, "Ed25519 keys are not allowed"),
        (lambda: dsa.generate_private_key(1024), "DSA keys are not allowed"),
    ],
    ids=["rsa1024", "rsa-e3", "p521", "secp256k1", "ed25519", "dsa"],
)
def test_rejected_keys(
    make_key: Callable[[], CertificateIssuerPrivateKeyTypes], message: str, make_csr: CsrFactory
) -> None:
    der = make_csr(make_key(), ["example.com"])
    with pytest.raises(CsrError, match=message):
        check_csr(der, [APEX])


def test_bad_signature(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    der = bytearray(make_csr(p256_key, ["example.com"]))
    der[-1] ^= 0x01  # last octet of the ECDSA s value
    with pytest.raises(CsrError, match="signature does not verify"):
        check_csr(bytes(der), [APEX])


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = bytes([size]) if size < 0x80 else bytes([0x82, size >> 8, size & 0xFF])
    return bytes([tag]) + length + content


def test_sha1_signature(rsa2048_key: rsa.RSAPrivateKey, make_csr: CsrFactory) -> None:
    # cryptography no longer signs with SHA-1, so re-sign the request info by hand.
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import padding

    info = x509.load_der_x509_csr(make_csr(rsa2048_key, ["example.com"])).tbs_certrequest_bytes
    sha1_with_rsa = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010105")) + b"\x05\x00")
    signature = rsa2048_key.sign(info, padding.PKCS1v15(), hashes.SHA1())
    der = _der(0x30, info + sha1_with_rsa + _der(0x03, b"\x00" + signature))
    with pytest.raises(CsrError, match="sha1 is not allowed"):
        check_csr(der, [APEX])


def test_extra_name(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    der = make_csr(p256_key, ["www.example.com", "example.com", "evil.example.org"])
    with pytest.raises(CsrError, match=r"not in the order: dns:evil\.example\.org$"):
        check_csr(der, ORDER)


def test_missing_name(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    with pytest.raises(CsrError, match=r"missing from the CSR: dns:www\.example\.com$"):
        check_csr(make_csr(p256_key, ["example.com"]), ORDER)


def test_extra_and_missing(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    der = make_csr(p256_key, ["example.com"], ["192.0.2.1"])
    with pytest.raises(CsrError) as err:
        check_csr(der, ORDER)
    assert str(err.value) == (
        "CSR names do not match the order; not in the order: ip:192.0.2.1; "
        "missing from the CSR: dns:www.example.com"
    )


def test_cn_not_in_san(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    der = make_csr(p256_key, ["www.example.com", "example.com"], cn="other.example.com")
    with pytest.raises(CsrError, match=r"commonName 'other\.example\.com' is not among"):
        check_csr(der, ORDER)


def test_two_cns(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    der = make_csr(p256_key, ["example.com"], cn=["example.com", "example.com"])
    with pytest.raises(CsrError, match="more than one commonName"):
        check_csr(der, [APEX])


def test_no_names(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    with pytest.raises(CsrError, match="no names"):
        check_csr(make_csr(p256_key), [APEX])


def test_email_san(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    from cryptography import x509

    der = make_csr(p256_key, ["example.com"], extra=[x509.RFC822Name("a@example.com")])
    with pytest.raises(CsrError, match="unsupported RFC822Name entry"):
        check_csr(der, [APEX])


def test_account_key_reuse(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    der = make_csr(p256_key, ["example.com"])
    with pytest.raises(CsrError, match=r"^the certificate key must differ from the account key$"):
        check_csr(der, [APEX], forbidden_key_spki=_spki(p256_key))
    other = ec.generate_private_key(ec.SECP256R1())
    check_csr(der, [APEX], forbidden_key_spki=_spki(other))


@pytest.mark.parametrize("der", [b"", b"garbage", b"\x30\x03\x02\x01\x01"])
def test_garbage(der: bytes) -> None:
    with pytest.raises(CsrError, match="not a valid DER PKCS#10"):
        check_csr(der, [APEX])


def test_a_version_other_than_1_is_a_bad_csr(
    p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory
) -> None:
    """Found by the parser fuzz: cryptography raises InvalidVersion, which is not a
    ValueError, for a CSR whose version field is not 0 (v1); it escaped as a 500."""
    der = make_csr(p256_key, ["example.com"])
    version = der.index(b"\x02\x01\x00")  # the first INTEGER: CertificationRequestInfo.version
    for wrong in (b"\x01", b"\x02", b"\xff"):
        with pytest.raises(CsrError, match="not a valid DER PKCS#10"):
            check_csr(der[: version + 2] + wrong + der[version + 3 :], [APEX])


def test_pem_is_not_der(p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory) -> None:
    from cryptography import x509

    pem = x509.load_der_x509_csr(make_csr(p256_key, ["example.com"])).public_bytes(
        serialization.Encoding.PEM
    )
    with pytest.raises(CsrError):
        check_csr(pem, [APEX])


@pytest.mark.parametrize(
    ("dns", "cn"),
    [
        (["evil\n.example.com"], None),
        (["www.example.com\n"], None),
        ([], "evil\n.example.com"),
        (["bad_label.example.com"], None),
    ],
)
def test_csr_names_must_be_ldh_names(
    p256_key: ec.EllipticCurvePrivateKey, make_csr: CsrFactory, dns: list[str], cn: str | None
) -> None:
    """Checked on their own, not only against the order: an order stored before the
    identifier check was strict may still list such a name."""
    names = [Identifier("dns", n.lower()) for n in [*dns, *([cn] if cn else [])]]
    with pytest.raises(CsrError, match="not a valid DNS name"):
        check_csr(make_csr(p256_key, dns, cn=cn), names)
