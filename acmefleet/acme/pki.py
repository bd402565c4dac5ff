"""What certificates point at over plain HTTP: issuer certificates, roots and CRLs."""

from __future__ import annotations

from datetime import datetime, timedelta

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Response
from acmefleet.ca.crl import RevokedEntry, build_crl
from acmefleet.errors import AcmeError, ProblemType, StoreUnavailable, malformed
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
    """The CRL: this process's copy while no revocation was committed since (by anyone, the
    database says), rebuilt otherwise and at least once a minute."""
    now = ctx.clock.now()
    try:
        return _fresh_crl(ctx, level, now)
    except StoreUnavailable:
        # The database is away: the CRL this process built last is still a valid CRL (it
        # says so until its nextUpdate), better than none for relying parties.
        last = ctx.crls.last_built(level, now, CRL_VALIDITY)
        if last is None:
            raise
        return last


def _fresh_crl(ctx: AcmeContext, level: str, now: datetime) -> bytes:
    with ctx.db.read() as conn:
        # The mark first: a revocation committed between the two reads is then in the list
        # but not in the mark, which costs one more build, never a CRL missing it.
        mark = cert_store.revocation_mark(conn, level)
        cached = ctx.crls.get(level, mark, now)
        if cached is not None:
            return cached
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
    ctx.crls.put(level, mark, der, now)
    return der
