"""ACME accounts and issued certificates."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from acmefleet.console.api.bodies import RenewalPullForward, Revocation
from acmefleet.console.api.deps import Ctx, ReadConn, Reader, Writer
from acmefleet.console.inventory import CertificateFilter
from acmefleet.console.renewals import Selection
from acmefleet.store.ids import MAX_ROW_ID

router = APIRouter(tags=["inventory"])


@router.get("/accounts")
def list_accounts(ops: Reader, conn: ReadConn) -> list[dict[str, Any]]:
    return ops.list_accounts(conn)


@router.get("/accounts/{account_id}")
def show_account(account_id: str, ops: Reader, conn: ReadConn) -> dict[str, Any]:
    return ops.get_account(conn, account_id)


@router.post("/accounts/{account_id}/deactivate")
def deactivate_account(account_id: str, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.deactivate_account(conn, account_id)


@router.get("/certificates")
def list_certificates(
    ops: Reader,
    conn: ReadConn,
    org_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    endpoint: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=253)] = None,
    expiring_within_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
    revoked: bool | None = None,
) -> list[dict[str, Any]]:
    flt = CertificateFilter(org_id, endpoint, name, expiring_within_days, revoked)
    return ops.list_certificates(conn, flt)


@router.post("/certificates/renewal-windows")
def pull_forward_renewals(body: RenewalPullForward, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    """Pull the selected certificates' RFC 9773 renewal windows forward to [now, now +
    within_hours]: ARI clients and the hosts' renew-check renew within that window."""
    selection = Selection(body.org_id, body.endpoint, body.issuer, body.name, tuple(body.serials))
    with ctx.db.write() as conn:
        return ops.pull_forward_renewals(
            conn, selection, reason=body.reason, within=timedelta(hours=body.within_hours)
        )


@router.get("/certificates/{cert_id}")
def show_certificate(cert_id: str, ops: Reader, conn: ReadConn) -> dict[str, Any]:
    return ops.get_certificate(conn, cert_id)


@router.get(
    "/certificates/{cert_id}/pem",
    responses={200: {"content": {"application/pem-certificate-chain": {}}}},
)
def download_certificate(cert_id: str, ops: Reader, conn: ReadConn) -> Response:
    pem = ops.certificate_pem(conn, cert_id)
    return Response(pem, media_type="application/pem-certificate-chain")


@router.post("/certificates/{cert_id}/revoke")
def revoke_certificate(cert_id: str, body: Revocation, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.revoke_certificate(conn, cert_id, reason=body.reason)
