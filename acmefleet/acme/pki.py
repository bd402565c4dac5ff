"""What certificates point at over plain HTTP: issuer certificates, roots and CRLs."""

from __future__ import annotations

from datetime import timedelta

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Response
from acmefleet.ca.crl import RevokedEntry, build_crl
from acmefleet.errors import AcmeError, ProblemType, malformed
from acmefleet.store import certificates as cert_store

CRL_VALIDITY = timedelta(days=1)


def serve(ctx: AcmeContext, level: str, item: str, method: str) -> Response:
    if method not in ("GET", "HEAD"):
        raise malformed(f"method {method} is not allowed here", status=405)
    authority = ctx.authorities.get(level)
    if authority is None:
        raise AcmeError(ProblemType.MALFORMED, "no such certificate authority", status=404)
    if item == "issuer.cer":
        return Response(body=authority.issuer_der, content_type="application/pkix-cert")
    if item == "root.pem":
        return Response(body=authority.root_pem, content_type="application/x-pem-file")
    return Response(body=current_crl(ctx, level), content_type="application/pkix-crl")


def current_crl(ctx: AcmeContext, level: str) -> bytes:
    """The CRL, rebuilt from the database at most once a minute (replicas agree within that)."""
    now = ctx.clock.now()
    cached = ctx.crls.get(level, now)
    if cached is not None:
        return cached
    with ctx.db.read() as conn:
        revoked = cert_store.list_revoked(conn, level)
    entries = [
        RevokedEntry(c.serial_hex, c.revoked_at, c.revocation_reason or 0)
        for c in revoked
        if c.revoked_at is not None
    ]
    der = build_crl(
        ctx.authorities[level],
        entries,
        this_update=now,
        next_update=now + CRL_VALIDITY,
        crl_number=int(now.timestamp() * 1000),
    )
    ctx.crls.put(level, der, now)
    return der
