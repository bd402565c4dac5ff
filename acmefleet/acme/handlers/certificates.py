"""Certificate download (RFC 8555 §7.4.2) and revocation (§7.6)."""

from __future__ import annotations

from sqlalchemy import Connection

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Response
from acmefleet.acme.signed import Signed
from acmefleet.errors import not_found
from acmefleet.policy import revocation
from acmefleet.store import certificates as cert_store
from acmefleet.store.engine import after_commit
from acmefleet.store.upstream_revocations import upstream_of

PEM_CHAIN = "application/pem-certificate-chain"


def certificate(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    signed.require_post_as_get()
    found = cert_store.get_certificate(conn, signed.params["id"])
    if (
        found is None
        or found.account_id != signed.signer.id
        or found.endpoint != signed.endpoint.name
    ):
        raise not_found("this certificate")
    return Response(status=200, body=found.chain_pem.encode("ascii"), content_type=PEM_CHAIN)


def revoke_cert(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    revoked = revocation.revoke(
        conn,
        endpoint=signed.endpoint.name,
        account=signed.account,
        key=signed.key,
        payload=signed.payload(),
        now=ctx.clock.now(),
        source=signed.request.client,
    )
    if upstream_of(revoked) is not None and ctx.relay is not None:
        after_commit(conn, ctx.relay.wake)  # its upstream is told by the relay
    return Response(status=200)
