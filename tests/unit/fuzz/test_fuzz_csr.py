"""Property tests of ``check_csr``: random bytes, damaged CSRs, and well-formed CSRs whose
names are hostile (built with cryptography: odd string types in the subject, every kind of
subjectAltName entry, raw SAN extensions with addresses of the wrong length).

``check_csr`` returns a ``CheckedCsr`` or raises ``CsrError``, nothing else; what it
accepts has an allowed key, a valid signature, and exactly the order's names, each a
canonical LDH name or IP address.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier
from hypothesis import event, given, reject
from hypothesis import strategies as st

from acmefleet.ca.csr import CheckedCsr, check_csr
from acmefleet.ca.errors import CsrError
from acmefleet.identifiers import (
    Identifier,
    IdentifierSyntaxError,
    normalise_dns_name,
    parse_identifier,
)
from tests.support.fuzz import fuzz_settings, half, hostile_text

# Subjects built unchecked (a CN of 0 or 300 characters): cryptography warns on parsing them.
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")
# Key generation is the slow part: one key of each kind for the whole module.
KEYS: list[Any] = [
    ec.generate_private_key(ec.SECP256R1()),
    ec.generate_private_key(ec.SECP384R1()),
    rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ec.generate_private_key(ec.SECP521R1()),  # refused curve
    rsa.generate_private_key(public_exponent=65537, key_size=1024),  # too short
    rsa.generate_private_key(public_exponent=3, key_size=2048),  # wrong exponent
    ed25519.Ed25519PrivateKey.generate(),  # refused type
    dsa.generate_private_key(key_size=1024),  # refused type
]
ACCEPTED_KEYS = 3
HASHES = [
    hashes.SHA256(),
    hashes.SHA384(),
    hashes.SHA512(),
    hashes.SHA224(),
]  # no SHA-1 signing here
LDH_NAME = re.compile(r"(\*\.)?((?!-)[a-z0-9-]{1,63}(?<!-)\.)+(?!-)[a-z0-9-]{1,63}(?<!-)")

# -- names

ldh_char = st.sampled_from("abcxyz019-ABZ")
labels = st.one_of(
    st.text(ldh_char, min_size=1, max_size=8),
    st.sampled_from(["*", "", "xn--bcher-kva", "-a", "a-", "a" * 64, "123", "é", "a\n", "\u212a"]),
)
valid_dns = st.from_regex(
    r"(\*\.)?[a-zA-Z0-9]{1,8}(\.[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?){0,2}\.example\.com",
    fullmatch=True,
)
hostile_dns = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.lists(labels, min_size=1, max_size=3).map(lambda parts: ".".join(parts) + ".example.com"),
    st.sampled_from(["www.example.com", "*.example.com", "EXAMPLE.com", "example.com."]),
    hostile_text,
)
dns_like = half(valid_dns, hostile_dns)
ascii_text = st.one_of(
    dns_like.map(lambda text: text.encode("ascii", "replace").decode()),
    st.text(st.characters(max_codepoint=127), max_size=30),
)
ip_like = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["10.20.0.1", "::1", "::ffff:10.0.0.1", "fe80::1%eth0", "010.1.1.1", "1.2.3"]),
)
STRING_TYPES = [
    _ASN1Type.UTF8String,
    _ASN1Type.PrintableString,
    _ASN1Type.IA5String,
    _ASN1Type.BMPString,
    _ASN1Type.UniversalString,
    _ASN1Type.T61String,
    _ASN1Type.VisibleString,
]


def _raw_san(entries: list[tuple[int, bytes]]) -> x509.UnrecognizedExtension:
    """A subjectAltName extension written by hand: ``(context tag, content)`` entries."""
    body = b"".join(_tlv(0x80 | tag, content) for tag, content in entries)
    return x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, _tlv(0x30, body))


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = bytes([size]) if size < 128 else bytes([0x82, size >> 8, size & 0xFF])
    return bytes([tag]) + length + content


def _general_name(kind: Callable[[Any], x509.GeneralName], value: Any) -> x509.GeneralName | None:
    """``kind(value)``, or None where cryptography will not build it."""
    try:
        return kind(value)
    except (ValueError, TypeError):
        return None


general_names = st.one_of(
    st.builds(_general_name, st.just(x509.DNSName), ascii_text),
    st.builds(x509.IPAddress, st.ip_addresses()),
    st.ip_addresses(v=4).map(lambda a: x509.IPAddress(ipaddress.ip_network(f"{a}/32"))),
    st.just(x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))),
    st.builds(_general_name, st.just(x509.RFC822Name), ascii_text),
    st.builds(_general_name, st.just(x509.UniformResourceIdentifier), ascii_text),
    st.just(x509.RegisteredID(ObjectIdentifier("1.2.3.4"))),
    st.binary(max_size=8).map(
        lambda b: x509.OtherName(ObjectIdentifier("1.3.6.1.5.5.7.8.7"), _tlv(0x04, b))
    ),
    st.just(x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.example")]))),
)
raw_san_entries = st.lists(
    st.tuples(st.sampled_from([2, 7, 1, 6, 0]), st.binary(max_size=20)), max_size=3
)


def _attribute(
    oid: ObjectIdentifier, value: str, kind: _ASN1Type
) -> x509.NameAttribute[Any] | None:
    """Unchecked where cryptography lets it be (a CN of 0 or 300 characters), else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return x509.NameAttribute(oid, value, kind, _validate=False)
        except (ValueError, UnicodeError):
            return None


@st.composite
def csrs(draw: st.DrawFn) -> tuple[bytes, list[Identifier]]:
    """A signed CSR with hostile names, and the order's identifiers (often its own names)."""
    index = draw(half(st.integers(0, ACCEPTED_KEYS - 1), st.integers(0, len(KEYS) - 1)))
    key = KEYS[index]
    one_name = half(dns_like, ip_like)
    names: list[str] = draw(
        half(st.lists(one_name, min_size=1, max_size=4), st.lists(one_name, max_size=2))
    )
    builder = x509.CertificateSigningRequestBuilder()
    attributes = []
    common_names = draw(
        st.one_of(
            st.just(names[:1]),
            st.lists(st.one_of(dns_like, ip_like), max_size=2),
        )
    )
    for cn in common_names:
        attributes.append(_attribute(NameOID.COMMON_NAME, cn, draw(st.sampled_from(STRING_TYPES))))
    if draw(st.booleans()):
        organisation = draw(hostile_text)
        attributes.append(_attribute(NameOID.ORGANIZATION_NAME, organisation, _ASN1Type.UTF8String))
    builder = builder.subject_name(x509.Name([a for a in attributes if a is not None]))
    san_kind = draw(st.sampled_from(["names", "names+others", "raw", "none"]))
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            dns_name = _general_name(x509.DNSName, name)
            if dns_name is not None:
                entries.append(dns_name)
    if san_kind == "names+others":
        entries += [g for g in draw(st.lists(general_names, min_size=1, max_size=3)) if g]
    if san_kind == "raw":
        builder = builder.add_extension(_raw_san(draw(raw_san_entries)), critical=False)
    elif san_kind != "none" and entries:
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    algorithm = (
        None
        if isinstance(key, ed25519.Ed25519PrivateKey)
        else draw(half(st.just(HASHES[0]), st.sampled_from(HASHES)))
    )
    try:
        der = builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)
    except (ValueError, TypeError, UnicodeError):  # cryptography refused to write it
        reject()
    damage = draw(st.integers(0, 3)) == 2  # one in four (not 0: hypothesis favours it)
    # Drawn before the length is known: ECDSA signatures vary in length from run to run.
    position, flip, header = (
        draw(st.integers(0, 2**16)),
        draw(st.integers(1, 255)),
        draw(st.booleans()),
    )
    if damage:  # one byte changed: in the header (lengths, version) or anywhere
        at = position % (min(len(der), 12) if header else len(der))
        der = der[:at] + bytes([der[at] ^ flip]) + der[at + 1 :]
    own = [_identifier(n) for n in [*names, *common_names]]
    expected = draw(
        half(
            st.just([i for i in own if i is not None]),
            st.lists(
                st.sampled_from([*filter(None, own), Identifier("dns", "example.com")]), max_size=3
            ),
        )
    )
    return der, expected


def _identifier(name: str) -> Identifier | None:
    for kind in ("ip", "dns"):
        try:
            return parse_identifier(kind, name)
        except IdentifierSyntaxError:
            continue
    return None


def _check(der: bytes, expected: list[Identifier]) -> CheckedCsr | None:
    try:
        checked = check_csr(der, expected)
    except CsrError as error:
        assert str(error)
        event("refused")
        return None
    event("accepted")
    return checked


def _assert_invariants(checked: CheckedCsr, expected: list[Identifier]) -> None:
    key = checked.public_key
    if isinstance(key, rsa.RSAPublicKey):
        assert 2048 <= key.key_size <= 8192 and key.public_numbers().e == 65537
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name in ("secp256r1", "secp384r1")
    for name in checked.dns_names:
        assert LDH_NAME.fullmatch(name), name
        assert normalise_dns_name(name) == name
    for address in checked.ip_addresses:
        assert ipaddress.ip_address(address).compressed == address
    names = [*checked.dns_names, *checked.ip_addresses]
    assert len(names) == len(set(names))
    assert {Identifier("dns", n) for n in checked.dns_names} | {
        Identifier("ip", a) for a in checked.ip_addresses
    } == {Identifier(i.type, i.value.lower()) for i in expected}


@given(st.binary(max_size=600))
@fuzz_settings(300)
def test_random_bytes(der: bytes) -> None:
    checked = _check(der, [Identifier("dns", "example.com")])
    assert checked is None  # random bytes are never a signed CSR


@given(csrs())
@fuzz_settings(400)
def test_hostile_names_in_real_csrs(case: tuple[bytes, list[Identifier]]) -> None:
    der, expected = case
    checked = _check(der, expected)
    if checked is not None:
        _assert_invariants(checked, expected)
