"""CSR checks at ACME finalize (RFC 8555 §7.4): signature, key policy, exact names."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import NameOID

from acmefleet.ca.errors import CsrError
from acmefleet.identifiers import (
    Identifier,
    IdentifierSyntaxError,
    normalise_dns_name,
    normalise_ip,
)

LeafPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_MIN_BITS, RSA_MAX_BITS, RSA_EXPONENT = 2048, 8192, 65537
EC_CURVES = frozenset({"secp256r1", "secp384r1"})
_SIGNATURE_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
_CURVE_LABELS = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
# DSA is named by its class, not listed: cryptography 51 warns on any use of its DSA module,
# and that warning would land on stderr of every CLI command.
_OTHER_KEYS: tuple[tuple[type, str], ...] = (
    (ed25519.Ed25519PublicKey, "Ed25519"),
    (ed448.Ed448PublicKey, "Ed448"),
    (x25519.X25519PublicKey, "X25519"),
    (x448.X448PublicKey, "X448"),
)


@dataclass(frozen=True)
class CheckedCsr:
    public_key: LeafPublicKey
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


def spki_der(key: LeafPublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _checked_key(csr: x509.CertificateSigningRequest) -> LeafPublicKey:
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrError("CSR public key is of an unsupported or malformed type") from exc
    if isinstance(key, rsa.RSAPublicKey):
        bits, exponent = key.key_size, key.public_numbers().e
        if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS or bits % 8:
            raise CsrError(
                f"RSA key of {bits} bits is not allowed; "
                f"use a multiple of 8 between {RSA_MIN_BITS} and {RSA_MAX_BITS} bits"
            )
        if exponent != RSA_EXPONENT:
            raise CsrError(f"RSA public exponent {exponent} is not allowed; use 65537")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            label = _CURVE_LABELS.get(key.curve.name, key.curve.name)
            raise CsrError(f"ECDSA key on curve {label} is not allowed; use P-256 or P-384")
        return key
    kind = next(
        (label for cls, label in _OTHER_KEYS if isinstance(key, cls)),
        type(key).__name__.removesuffix("PublicKey") or "this key type",
    )
    raise CsrError(f"{kind} keys are not allowed; use RSA (2048-8192 bits) or ECDSA P-256/P-384")


def _check_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        algorithm = csr.signature_hash_algorithm
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrError("CSR signature algorithm is not supported") from exc
    if not isinstance(algorithm, _SIGNATURE_HASHES):
        name = algorithm.name if algorithm else "none"
        raise CsrError(f"CSR signature hash {name} is not allowed; use SHA-256, -384 or -512")
    if not valid:
        raise CsrError("CSR signature does not verify with the CSR public key")


def _ip(value: str) -> str:
    return ipaddress.ip_address(value).compressed


def _dns_name(value: str, where: str) -> Identifier:
    """A CSR's DNS name, checked as an order identifier is (LDH labels, whole string)."""
    try:
        return Identifier("dns", normalise_dns_name(value))
    except IdentifierSyntaxError as exc:
        raise CsrError(f"CSR {where} {value!r} is not a valid DNS name") from exc


def _requested_names(csr: x509.CertificateSigningRequest) -> list[Identifier]:
    """The CSR's names in the order the client gave: the commonName first, then the SANs.

    Clients (lego 4.9 among them) file a certificate under its first name, so the order is
    kept into the certificate.
    """
    # No extension reads as no names (cryptography 51 refuses to build an empty one).
    san: Iterable[x509.GeneralName]
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = ()
    except ValueError as exc:
        raise CsrError(f"CSR extensions are malformed: {exc}") from exc
    ordered: list[Identifier] = []
    for entry in san:
        if isinstance(entry, x509.DNSName):
            ordered.append(_dns_name(entry.value, "subjectAltName"))
        elif isinstance(entry, x509.IPAddress):
            ordered.append(Identifier("ip", entry.value.compressed))
        else:
            raise CsrError(f"CSR subjectAltName has an unsupported {type(entry).__name__} entry")
    names = set(ordered)
    try:
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError as exc:
        raise CsrError(f"CSR subject is malformed: {exc}") from exc
    if len(cns) > 1:
        raise CsrError("CSR subject has more than one commonName")
    if cns:
        raw = cns[0].value
        cn_text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        try:
            cn = Identifier("ip", normalise_ip(cn_text))
        except IdentifierSyntaxError:
            cn = _dns_name(cn_text, "commonName")
        if names and cn not in names:
            raise CsrError(f"CSR commonName {cn_text!r} is not among its subjectAltName entries")
        ordered.insert(0, cn)
    return list(dict.fromkeys(ordered))


def _describe(names: set[Identifier]) -> str:
    return ", ".join(f"{n.type}:{n.value}" for n in sorted(names))


def check_csr(
    der: bytes, expected: Collection[Identifier], *, forbidden_key_spki: bytes | None = None
) -> CheckedCsr:
    """Check a finalize CSR against the order's identifiers; raise CsrError with the reason."""
    try:
        csr = x509.load_der_x509_csr(der)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise CsrError(f"CSR is not a valid DER PKCS#10 request: {exc}") from exc
    key = _checked_key(csr)
    _check_signature(csr)
    if forbidden_key_spki is not None and spki_der(key) == forbidden_key_spki:
        raise CsrError("the certificate key must differ from the account key")
    in_order = _requested_names(csr)
    requested = set(in_order)
    if not requested:
        raise CsrError("CSR contains no names (no subjectAltName and no commonName)")
    wanted = {
        Identifier("dns", i.value.lower()) if i.type == "dns" else Identifier("ip", _ip(i.value))
        for i in expected
    }
    if requested != wanted:
        problems = []
        if extra := requested - wanted:
            problems.append(f"not in the order: {_describe(extra)}")
        if missing := wanted - requested:
            problems.append(f"missing from the CSR: {_describe(missing)}")
        raise CsrError("CSR names do not match the order; " + "; ".join(problems))
    return CheckedCsr(
        public_key=key,
        dns_names=tuple(n.value for n in in_order if n.type == "dns"),
        ip_addresses=tuple(n.value for n in in_order if n.type == "ip"),
    )
