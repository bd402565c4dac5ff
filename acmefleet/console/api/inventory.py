"""ACME accounts and issued certificates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from acmefleet.console import inventory, views
from acmefleet.console.api.bodies import Revocation
from acmefleet.console.api.deps import Admin, Caller, Ctx, ReadConn, Source, WriteConn
from acmefleet.store import accounts as account_store

router = APIRouter(tags=["inventory"])


@router.get("/accounts")
def list_accounts(_: Caller, conn: ReadConn) -> list[dict[str, Any]]:
    return [views.account(a) for a in account_store.list_accounts(conn)]


@router.get("/accounts/{account_id}")
def show_account(account_id: str, _: Caller, conn: ReadConn) -> dict[str, Any]:
    return views.account(inventory.get_account(conn, account_id))


@router.post("/accounts/{account_id}/deactivate")
def deactivate_account(
    account_id: str, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    return views.account(
        inventory.deactivate_account(
            conn, account_id, actor=who.actor, now=ctx.clock.now(), source=src
        )
    )


@router.get("/certificates")
def list_certificates(
    _: Caller,
    ctx: Ctx,
    conn: ReadConn,
    org_id: Annotated[int | None, Query(ge=1)] = None,
    endpoint: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=253)] = None,
    expiring_within_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
    revoked: bool | None = None,
) -> list[dict[str, Any]]:
    now = ctx.clock.now()
    flt = inventory.CertificateFilter(org_id, endpoint, name, expiring_within_days, revoked)
    return [views.certificate(c, now) for c in inventory.list_certificates(conn, flt, now)]


@router.get("/certificates/{cert_id}")
def show_certificate(cert_id: str, _: Caller, ctx: Ctx, conn: ReadConn) -> dict[str, Any]:
    return views.certificate(inventory.get_certificate(conn, cert_id), ctx.clock.now())


@router.get(
    "/certificates/{cert_id}/pem",
    responses={200: {"content": {"application/pem-certificate-chain": {}}}},
)
def download_certificate(cert_id: str, _: Caller, conn: ReadConn) -> Response:
    cert = inventory.get_certificate(conn, cert_id)
    return Response(cert.chain_pem, media_type="application/pem-certificate-chain")


@router.post("/certificates/{cert_id}/revoke")
def revoke_certificate(
    cert_id: str, body: Revocation, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    now = ctx.clock.now()
    cert = inventory.revoke_certificate(
        conn, cert_id, reason=body.reason, actor=who.actor, now=now, source=src
    )
    ctx.crl_cache.pop(cert.ca_level, None)
    return views.certificate(cert, now)
