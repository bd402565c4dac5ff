"""Leaf certificate issuance: the Issuer protocol and the embedded (local key) issuer."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from acmefleet.ca._x509 import (
    leaf_key_usage,
    random_serial,
    serial_hex,
    signing_hash,
    utc_seconds,
)
from acmefleet.ca.csr import LeafPublicKey, spki_der
from acmefleet.ca.errors import CaError
from acmefleet.ca.hierarchy import Authority
from acmefleet.ca.profiles import LeafProfile, ProfileKind
from acmefleet.clock import Clock

BACKDATE = timedelta(minutes=1)
ONE_SECOND = timedelta(seconds=1)
CABF_DOMAIN_VALIDATED = x509.ObjectIdentifier("2.23.140.1.2.1")
MAX_CN_LENGTH = 64  # ub-common-name
_EMPTY_NAME = x509.Name([])
Ext = x509.Extension[x509.ExtensionType]


@dataclass(frozen=True)
class IssueRequest:
    public_key: LeafPublicKey
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    profile: LeafProfile
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed leaf; ``serial_hex`` is lower-case hex without colons or leading zeros."""

    serial_hex: str
    leaf_der: bytes
    chain_pem: bytes
    not_before: datetime
    not_after: datetime
    spki_sha256_hex: str


class Issuer(Protocol):
    """Anything that turns an IssueRequest into a certificate (embedded CA, upstream relay)."""

    def issue(self, request: IssueRequest) -> IssuedCertificate:
        """Sign a leaf certificate for ``request``."""
        ...


def _ext(value: x509.ExtensionType, *, critical: bool = False) -> Ext:
    return x509.Extension(value.oid, critical, value)


def _encoded(value: x509.ExtensionType, *, critical: bool = False) -> Ext:
    """A constant extension DER-encoded once (the builder copies the bytes verbatim)."""
    return _ext(x509.UnrecognizedExtension(value.oid, value.public_bytes()), critical=critical)


@dataclass(frozen=True)
class PkiUrls:
    """What the server publishes for a trust level, and its leaves point at (AIA, CRL DP)."""

    ca_issuers: str
    crl: str
    ocsp: str


def pki_urls(pki_base_url: str, level: str) -> PkiUrls:
    base = pki_base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme != "http" or not parts.netloc or parts.query or parts.fragment:
        raise CaError(f"pki_base_url must be a plain http:// URL, not {pki_base_url!r}")
    root = f"{base}/pki/{level}"
    return PkiUrls(f"{root}/issuer.cer", f"{root}/crl", f"{root}/ocsp")


class EmbeddedIssuer:
    """Signs leaves with an in-memory issuing key; everything constant is built once."""

    def __init__(self, authority: Authority, *, clock: Clock, pki_base_url: str) -> None:
        self._clock = clock
        self._key = authority.issuer_key
        self._hash = signing_hash(authority.issuer_key)
        self._issuer_name = authority.issuer.subject
        self._issuer_chain_pem = authority.chain_pem
        self._earliest = authority.issuer.not_valid_before_utc
        self._latest = authority.issuer.not_valid_after_utc
        urls = pki_urls(pki_base_url, authority.level)
        issuer_ski = authority.issuer.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        common = [
            _encoded(x509.BasicConstraints(ca=False, path_length=None), critical=True),
            _encoded(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])),
            _encoded(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)),
            _encoded(
                x509.AuthorityInformationAccess(
                    [
                        # RFC 6960 §4.2.2.1 (id-ad-ocsp), then RFC 5280 §4.2.2.1.
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(urls.ocsp),
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(urls.ca_issuers),
                        ),
                    ]
                )
            ),
            _encoded(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(urls.crl)], None, None, None
                        )
                    ]
                )
            ),
        ]
        dv_policy = x509.CertificatePolicies([x509.PolicyInformation(CABF_DOMAIN_VALIDATED, None)])
        self._profile_extensions: dict[ProfileKind, list[Ext]] = {
            "public-dv": [*common, _encoded(dv_policy)],
            "private-server": common,
        }
        self._rsa_usage = _encoded(leaf_key_usage(key_encipherment=True), critical=True)
        self._ec_usage = _encoded(leaf_key_usage(key_encipherment=False), critical=True)

    @staticmethod
    def _key_id(kind: ProfileKind, key: LeafPublicKey) -> list[Ext]:
        """SKI: RFC 5280 SHOULD for private leaves; the BRs say NOT RECOMMENDED for public ones."""
        if kind == "public-dv":
            return []
        return [_ext(x509.SubjectKeyIdentifier.from_public_key(key))]

    def _validity(self, request: IssueRequest) -> tuple[datetime, datetime]:
        """Inclusive validity (RFC 5280 §4.1.2.5): the period is notAfter - notBefore + 1s."""
        profile = request.profile
        if request.not_before is None:
            not_before = max(utc_seconds(self._clock.now() - BACKDATE), self._earliest)
        else:
            not_before = utc_seconds(request.not_before)
        if request.not_after is None:
            if not_before > self._latest:  # and not_before + validity may not fit a datetime
                raise CaError("requested validity falls outside the issuing CA's validity")
            not_after = not_before + profile.validity - ONE_SECOND
        else:
            not_after = utc_seconds(request.not_after)
        if not_after <= not_before:
            raise CaError("notAfter must be later than notBefore")
        if not_after - not_before + ONE_SECOND > profile.max_validity:
            raise CaError(
                f"requested validity exceeds the {profile.name} maximum of "
                f"{profile.max_validity.days} days"
            )
        if not_before < self._earliest or not_after > self._latest:
            raise CaError("requested validity falls outside the issuing CA's validity")
        return not_before, not_after

    def issue(self, request: IssueRequest) -> IssuedCertificate:
        key = request.public_key
        if isinstance(key, rsa.RSAPublicKey):
            usage = self._rsa_usage
        elif isinstance(key, ec.EllipticCurvePublicKey):
            usage = self._ec_usage
        else:
            raise CaError(f"cannot issue for a {type(key).__name__} key")
        if not request.dns_names and not request.ip_addresses:
            raise CaError("a certificate needs at least one name")
        not_before, not_after = self._validity(request)
        kind = request.profile.kind
        subject = _EMPTY_NAME
        if kind == "private-server" and request.dns_names:
            first = request.dns_names[0]
            if len(first) <= MAX_CN_LENGTH:
                subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)])
        san = x509.SubjectAlternativeName(
            [
                *(x509.DNSName(name) for name in request.dns_names),
                *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in request.ip_addresses),
            ]
        )
        serial = random_serial()
        cert = (
            x509.CertificateBuilder(
                issuer_name=self._issuer_name,
                subject_name=subject,
                public_key=key,
                serial_number=serial,
                extensions=[
                    usage,
                    *self._profile_extensions[kind],
                    _ext(san, critical=subject == _EMPTY_NAME),
                    *self._key_id(kind, key),
                ],
            )
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .sign(self._key, self._hash)
        )
        leaf_der = cert.public_bytes(serialization.Encoding.DER)
        return IssuedCertificate(
            serial_hex=serial_hex(serial),
            leaf_der=leaf_der,
            chain_pem=cert.public_bytes(serialization.Encoding.PEM) + self._issuer_chain_pem,
            not_before=not_before,
            not_after=not_after,
            spki_sha256_hex=hashlib.sha256(spki_der(key)).hexdigest(),
        )
