"""What certificates point at over plain HTTP: issuer certificates, roots, CRLs, OCSP."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.x509.ocsp import OCSPResponseStatus

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Request, Response
from acmefleet.ca import ocsp
from acmefleet.errors import AcmeError, ProblemType, StoreUnavailable, malformed
from acmefleet.policy import crl_publication
from acmefleet.store import certificates as cert_store

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
# A request for one certificate is about 80 octets; with a signature and its certificates,
# a few KiB. Nothing bigger is parsed.
MAX_OCSP_REQUEST = 16 * 1024


def serve(ctx: AcmeContext, found: re.Match[str], request: Request) -> Response:
    level, item = found["level"], found["item"]
    authority = ctx.authorities.get(level)
    if authority is None:
        raise AcmeError(ProblemType.MALFORMED, "no such certificate authority", status=404)
    if item == "ocsp" or found["ocsp_get"] is not None:
        return _ocsp(ctx, level, found["ocsp_get"], request)
    if request.method not in ("GET", "HEAD"):
        raise malformed(f"method {request.method} is not allowed here", status=405)
    if item == "issuer.cer":
        return Response(body=authority.issuer_der, content_type="application/pkix-cert")
    if item == "root.pem":
        return Response(body=authority.root_pem, content_type="application/x-pem-file")
    return Response(body=current_crl(ctx, level), content_type="application/pkix-crl")


def _ocsp(ctx: AcmeContext, level: str, in_path: str | None, request: Request) -> Response:
    """RFC 6960 over HTTP (Appendix A): the request by GET in the path, or as a POST body.
    Every OCSP outcome is a 200 with an OCSP status; only the HTTP method is refused."""
    if in_path is not None and request.method in ("GET", "HEAD"):
        der = _base64(in_path)
    elif in_path is None and request.method == "POST":
        der = request.body if request.content_type == OCSP_REQUEST else None
    else:
        raise malformed(f"method {request.method} is not allowed here", status=405)
    return Response(body=ocsp_answer(ctx, level, der), content_type=OCSP_RESPONSE)


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def ocsp_answer(ctx: AcmeContext, level: str, der: bytes | None) -> bytes:
    """The DER OCSP response to ``der`` for the certificates of ``level``'s issuing CA."""
    if der is None or len(der) > MAX_OCSP_REQUEST:
        return ocsp.refusal(OCSPResponseStatus.MALFORMED_REQUEST)
    try:
        query = ocsp.OcspQuery(der)
    except ocsp.UnusableRequest:
        return ocsp.refusal(OCSPResponseStatus.MALFORMED_REQUEST)
    authority = ctx.authorities[level]
    if not query.is_for(authority):
        return ocsp.refusal(OCSPResponseStatus.UNAUTHORIZED)
    try:
        with ctx.db.read() as conn:
            found = cert_store.revocation_status(conn, level, format(query.serial, "x"))
    except StoreUnavailable:
        return ocsp.refusal(OCSPResponseStatus.TRY_LATER)
    status = None if found is None else ocsp.Status(*found)
    return ocsp.answer(authority, query, status, ctx.clock.now())


def current_crl(ctx: AcmeContext, level: str) -> bytes:
    """The CRL every worker and replica serves (``policy.crl_publication``)."""
    now = ctx.clock.now()
    hold = ctx.crl_hold_until.get(level)
    try:
        served = crl_publication.current_crl(
            ctx.db,
            ctx.authorities[level],
            level,
            ctx.clock,
            may_publish=hold is None or now >= hold,
        )
    except StoreUnavailable:
        # The database is away: the CRL this process served last is still a valid CRL (it
        # says so until its nextUpdate), better than none for relying parties.
        last = ctx.last_crls.get(level)
        if last is None or now >= last.next_update:
            raise
        return last.der
    if served.held_back and (hold is None or now >= hold):
        ctx.crl_hold_until[level] = now + crl_publication.UNWRITABLE_HOLD
    ctx.last_crls[level] = served.crl
    return served.crl.der
