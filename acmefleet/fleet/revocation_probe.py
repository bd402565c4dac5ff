"""What a relying party and an ARI client would learn of a served certificate.

For ``acmefleet status``: the certificate's OCSP status, asked where the certificate says
(its AIA OCSP URL, with the issuer fetched from its AIA caIssuers URL, as a browser would)
and trusted only when the issuer signed the answer; and its renewal window (RFC 9773) from
the ACME server's renewalInfo. Each answer is "unknown" rather than an error when it cannot
be had: a monitoring run reports what it could not learn instead of stopping.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from acmefleet.ca.renewal_info import CertIdError, cert_id_of

OcspVerdict = Literal["good", "revoked", "unknown"]
TIMEOUT = 5.0
CLOCK_SKEW = timedelta(minutes=5)
MAX_ANSWER = 64 * 1024


@dataclass(frozen=True)
class RenewalWindow:
    start: datetime
    end: datetime


def _aia(leaf: x509.Certificate, method: x509.ObjectIdentifier) -> str | None:
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in aia:
        location = description.access_location
        if description.access_method == method and isinstance(
            location, x509.UniformResourceIdentifier
        ):
            return location.value
    return None


def _get(client: httpx.Client, method: str, url: str, **kw: object) -> bytes | None:
    """The body of a 200 answer of at most MAX_ANSWER bytes; None otherwise."""
    if not url.startswith(("http://", "https://")):
        return None
    try:
        with client.stream(method, url, **kw) as answer:  # type: ignore[arg-type]
            if answer.status_code != 200:
                return None
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER:
                    return None
            return body
    except httpx.HTTPError:
        return None


def _signed_by(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
    """Whether the issuing CA signed the response itself (acmefleet's responders do)."""
    key = issuer.public_key()
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        else:
            return False
    except InvalidSignature:
        return False
    return True


def ocsp_status(leaf_der: bytes, timeout: float = TIMEOUT) -> OcspVerdict:
    """The OCSP verdict on the certificate, from the responder its AIA names.

    Call it for a certificate whose chain verified (its AIA URLs are then a trusted CA's).
    The issuer fetched from caIssuers must have signed the leaf and the answer; the answer
    must be for the serial and issuer hashes asked, current (thisUpdate not ahead of this
    clock by more than the skew, nextUpdate not passed), and carry the nonce sent when it
    carries one (responders that precompute answers send none). Anything else: unknown."""
    try:
        return _ocsp_status(leaf_der, timeout)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return "unknown"


def _ocsp_status(leaf_der: bytes, timeout: float) -> OcspVerdict:
    leaf = x509.load_der_x509_certificate(leaf_der)
    responder = _aia(leaf, AuthorityInformationAccessOID.OCSP)
    issuer_url = _aia(leaf, AuthorityInformationAccessOID.CA_ISSUERS)
    if responder is None or issuer_url is None:
        return "unknown"
    nonce = os.urandom(16)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        issuer_der = _get(client, "GET", issuer_url)
        if issuer_der is None:
            return "unknown"
        issuer = x509.load_der_x509_certificate(issuer_der)
        leaf.verify_directly_issued_by(issuer)  # InvalidSignature: not the leaf's issuer
        # SHA-1 names the certificate in the request only (RFC 5019 §2.1.1: what every
        # responder answers), it protects nothing.
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(leaf, issuer, hashes.SHA1())  # noqa: S303
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        body = _get(
            client,
            "POST",
            responder,
            content=request.public_bytes(Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
    if body is None:
        return "unknown"
    response = ocsp.load_der_ocsp_response(body)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return "unknown"
    if not _answers(response, request, nonce) or not _signed_by(response, issuer):
        return "unknown"
    if response.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        return "revoked"
    return "good" if response.certificate_status == ocsp.OCSPCertStatus.GOOD else "unknown"


def _answers(response: ocsp.OCSPResponse, request: ocsp.OCSPRequest, nonce: bytes) -> bool:
    """Whether ``response`` answers ``request`` and is current."""
    now = datetime.now(UTC)
    if (
        response.serial_number != request.serial_number
        or response.issuer_name_hash != request.issuer_name_hash
        or response.issuer_key_hash != request.issuer_key_hash
        or response.this_update_utc > now + CLOCK_SKEW
        or (response.next_update_utc is not None and response.next_update_utc <= now)
    ):
        return False
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return True
    return echoed == nonce


def renewal_window(
    leaf_der: bytes, directory_url: str, ca_bundle: Path | None, timeout: float = TIMEOUT
) -> RenewalWindow | None:
    """The suggested window the ACME server at ``directory_url`` gives the certificate."""
    try:
        identifier = str(cert_id_of(x509.load_der_x509_certificate(leaf_der)))
    except (CertIdError, ValueError):
        return None
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    with httpx.Client(verify=context, timeout=timeout, follow_redirects=False) as client:
        directory = _json(_get(client, "GET", directory_url))
        base = directory.get("renewalInfo") if directory else None
        if not isinstance(base, str) or not base.startswith("https://"):
            return None
        info = _json(_get(client, "GET", f"{base.rstrip('/')}/{identifier}"))
    window = info.get("suggestedWindow") if info else None
    if not isinstance(window, dict):
        return None
    try:
        start = datetime.fromisoformat(str(window["start"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(window["end"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        return None
    return RenewalWindow(start, end)


def _json(body: bytes | None) -> dict[str, object] | None:
    if body is None:
        return None
    try:
        found = json.loads(body)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
