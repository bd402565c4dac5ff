from __future__ import annotations

import hashlib
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from acmefleet.ca.errors import CaError
from acmefleet.ca.hierarchy import Authority
from acmefleet.ca.issuer import EmbeddedIssuer, IssuedCertificate, Issuer, IssueRequest
from acmefleet.ca.profiles import DEFAULT_PROFILES
from acmefleet.clock import FixedClock

DV = DEFAULT_PROFILES["public-dv"]
PRIVATE = DEFAULT_PROFILES["private-server"]
NAMES = ("www.example.com", "example.com")


def _leaf(issued: IssuedCertificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(issued.leaf_der)


def _verify(
    authority: Authority, issued: IssuedCertificate, name: x509.DNSName | x509.IPAddress
) -> None:
    leaf, *intermediates = x509.load_pem_x509_certificates(issued.chain_pem)
    verifier = (
        PolicyBuilder()
        .store(Store([authority.root]))
        .time(issued.not_before + timedelta(days=1))
        .build_server_verifier(name)
    )
    chain = verifier.verify(leaf, intermediates)
    assert chain == [leaf, authority.issuer, authority.root]


def test_profiles() -> None:
    assert DV.kind == "public-dv" and PRIVATE.kind == "private-server"
    assert DV.validity == PRIVATE.validity == timedelta(days=90)
    assert DV.max_validity == timedelta(days=199)
    assert PRIVATE.max_validity == timedelta(days=397)


def test_is_an_issuer(public_issuer: EmbeddedIssuer) -> None:
    issuer: Issuer = public_issuer
    assert callable(issuer.issue)


@pytest.mark.parametrize("key_fixture", ["p256_key", "rsa2048_key"])
def test_public_dv_leaf(
    key_fixture: str,
    public_issuer: EmbeddedIssuer,
    public_ca: Authority,
    clock: FixedClock,
    request: pytest.FixtureRequest,
    pki_base_url: str,
) -> None:
    key = request.getfixturevalue(key_fixture)
    issued = public_issuer.issue(IssueRequest(key.public_key(), NAMES, (), DV))
    leaf = _leaf(issued)
    _verify(public_ca, issued, x509.DNSName("www.example.com"))
    _verify(public_ca, issued, x509.DNSName("example.com"))

    assert leaf.issuer == public_ca.issuer.subject
    assert leaf.subject == x509.Name([])
    assert leaf.signature_hash_algorithm is not None
    assert leaf.signature_hash_algorithm.name == "sha256"
    ext = leaf.extensions
    san = ext.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.DNSName) == list(NAMES)
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert ku.value.key_encipherment is isinstance(key, rsa.RSAPrivateKey)
    assert not ku.value.key_cert_sign and not ku.value.crl_sign
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    issuer_ski = public_ca.issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.value.digest
    with pytest.raises(x509.ExtensionNotFound):
        ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    policies = ext.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.23.140.1.2.1"]
    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, f"{pki_base_url}/pki/public/ocsp"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{pki_base_url}/pki/public/issuer.cer"),
    ]
    crldp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert crldp[0].full_name is not None
    assert [n.value for n in crldp[0].full_name] == [f"{pki_base_url}/pki/public/crl"]

    assert issued.not_before == leaf.not_valid_before_utc == clock.now() - timedelta(minutes=1)
    assert issued.not_after == leaf.not_valid_after_utc
    assert issued.not_after - issued.not_before == timedelta(days=90) - timedelta(seconds=1)
    assert issued.serial_hex == format(leaf.serial_number, "x")
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert issued.spki_sha256_hex == hashlib.sha256(spki).hexdigest()
    assert issued.chain_pem.endswith(public_ca.chain_pem)


def test_private_server_leaf(
    private_issuer: EmbeddedIssuer,
    private_ca: Authority,
    p384_key: ec.EllipticCurvePrivateKey,
    pki_base_url: str,
) -> None:
    request = IssueRequest(p384_key.public_key(), ("db.internal.example",), ("10.0.0.5",), PRIVATE)
    issued = private_issuer.issue(request)
    _verify(private_ca, issued, x509.DNSName("db.internal.example"))
    _verify(private_ca, issued, x509.IPAddress(ipaddress.ip_address("10.0.0.5")))
    leaf = _leaf(issued)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "db.internal.example"
    )
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.CertificatePolicies)
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location.value == f"{pki_base_url}/pki/private/ocsp"
    assert aia[1].access_location.value == f"{pki_base_url}/pki/private/issuer.cer"


def test_ip_only_private_leaf_has_empty_subject(
    private_issuer: EmbeddedIssuer, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    issued = private_issuer.issue(IssueRequest(p256_key.public_key(), (), ("::1",), PRIVATE))
    leaf = _leaf(issued)
    assert leaf.subject == x509.Name([])
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_serials(public_issuer: EmbeddedIssuer, p256_key: ec.EllipticCurvePrivateKey) -> None:
    request = IssueRequest(p256_key.public_key(), NAMES, (), DV)
    serials = {_leaf(public_issuer.issue(request)).serial_number for _ in range(200)}
    assert len(serials) == 200
    for serial in serials:
        assert serial > 0 and 64 < serial.bit_length() <= 159  # positive, DER <= 20 octets


def test_requested_validity(
    public_issuer: EmbeddedIssuer, p256_key: ec.EllipticCurvePrivateKey, clock: FixedClock
) -> None:
    start = clock.now() + timedelta(hours=2, microseconds=123)
    end = start + DV.max_validity - timedelta(seconds=1)  # inclusive period: exactly 199 days
    request = IssueRequest(p256_key.public_key(), NAMES, (), DV, not_before=start, not_after=end)
    issued = public_issuer.issue(request)
    assert issued.not_before == start.replace(microsecond=0)
    assert issued.not_after == end.replace(microsecond=0)

    too_long = IssueRequest(
        p256_key.public_key(), NAMES, (), DV, not_before=start, not_after=end + timedelta(seconds=1)
    )
    with pytest.raises(CaError, match="exceeds the public-dv maximum of 199 days"):
        public_issuer.issue(too_long)
    backwards = IssueRequest(
        p256_key.public_key(), NAMES, (), DV, not_before=start, not_after=start
    )
    with pytest.raises(CaError, match="later than notBefore"):
        public_issuer.issue(backwards)
    naive = IssueRequest(p256_key.public_key(), NAMES, (), DV, not_before=datetime(2030, 1, 1))
    with pytest.raises(CaError, match="naive datetime"):
        public_issuer.issue(naive)


def test_validity_within_issuer(
    public_ca: Authority, p256_key: ec.EllipticCurvePrivateKey, pki_base_url: str
) -> None:
    late = FixedClock(public_ca.issuer.not_valid_after_utc - timedelta(days=10))
    issuer = EmbeddedIssuer(public_ca, clock=late, pki_base_url=pki_base_url)
    with pytest.raises(CaError, match="outside the issuing CA's validity"):
        issuer.issue(IssueRequest(p256_key.public_key(), NAMES, (), DV))
    early = FixedClock(public_ca.issuer.not_valid_before_utc)  # backdating is clamped
    issued = EmbeddedIssuer(public_ca, clock=early, pki_base_url=pki_base_url).issue(
        IssueRequest(p256_key.public_key(), NAMES, (), DV)
    )
    assert issued.not_before == public_ca.issuer.not_valid_before_utc


def test_a_not_before_at_the_end_of_time_is_refused(
    public_issuer: EmbeddedIssuer, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    """notBefore + the profile's validity overflowed datetime (OverflowError, a 500)."""
    end_of_time = datetime(9999, 12, 31, tzinfo=UTC)
    request = IssueRequest(p256_key.public_key(), NAMES, (), DV, not_before=end_of_time)
    with pytest.raises(CaError, match="outside the issuing CA's validity"):
        public_issuer.issue(request)


def test_refusals(public_issuer: EmbeddedIssuer, p256_key: ec.EllipticCurvePrivateKey) -> None:
    edwards = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(CaError, match="cannot issue"):
        public_issuer.issue(IssueRequest(edwards, NAMES, (), DV))  # type: ignore[arg-type]
    with pytest.raises(CaError, match="at least one name"):
        public_issuer.issue(IssueRequest(p256_key.public_key(), (), (), DV))


@pytest.mark.parametrize(
    "url", ["https://acme.example.net", "ftp://x.example", "http://", "http://a.example/?q=1"]
)
def test_bad_pki_base_url(public_ca: Authority, clock: FixedClock, url: str) -> None:
    with pytest.raises(CaError, match="plain http://"):
        EmbeddedIssuer(public_ca, clock=clock, pki_base_url=url)


def test_unrelated_root_does_not_verify(
    public_issuer: EmbeddedIssuer, private_ca: Authority, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    issued = public_issuer.issue(IssueRequest(p256_key.public_key(), NAMES, (), DV))
    from cryptography.x509.verification import VerificationError

    with pytest.raises(VerificationError):
        _verify(private_ca, issued, x509.DNSName("example.com"))


def test_leaf_signature(public_issuer: EmbeddedIssuer, public_ca: Authority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf(public_issuer.issue(IssueRequest(key.public_key(), NAMES, (), DV)))
    leaf.verify_directly_issued_by(public_ca.issuer)
    public_ca.issuer_key.public_key().verify(
        leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256())
    )
    assert datetime.now(UTC) < leaf.not_valid_after_utc
