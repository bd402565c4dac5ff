"""ACME accounts and issued certificates: lists, filters, download, deactivate, revoke,
renewal windows pulled forward."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request, Response

from acmefleet.console import inventory, renewals, views
from acmefleet.console.operations import ConsoleOperations
from acmefleet.console.web.deps import Ctx, SignedIn, Source, Writer, back_to
from acmefleet.console.web.render import page, see_other
from acmefleet.store import accounts as account_store
from acmefleet.store import orgs as org_store
from acmefleet.store.ids import MAX_ROW_ID

router = APIRouter()
EXPIRING_DAYS = 30


@router.get("/accounts")
def list_accounts(request: Request, viewer: SignedIn, ctx: Ctx) -> Response:
    with ctx.db.read() as conn:
        names = {o.id: o.name for o in org_store.list_orgs(conn)}
        accounts = account_store.list_accounts(conn)
    rows = [views.account(a) | {"org": names.get(a.org_id)} for a in accounts]
    return page(request, "accounts.html", viewer, accounts=rows)


@router.post("/accounts/{account_id}/deactivate")
def deactivate_account(
    request: Request, account_id: str, viewer: Writer, ctx: Ctx, src: Source
) -> Response:
    back_to(request, "/accounts")
    with ctx.db.write() as conn:
        inventory.deactivate_account(
            conn, account_id, actor=viewer.actor, now=ctx.clock.now(), source=src
        )
    return see_other("/accounts")


@router.get("/certificates")
def list_certificates(
    request: Request,
    viewer: SignedIn,
    ctx: Ctx,
    name: Annotated[str, Query(max_length=253)] = "",
    expiring: Annotated[bool, Query()] = False,
    state: Annotated[Literal["", "active", "revoked"], Query()] = "",
    pulled: Annotated[int | None, Query(ge=0, le=10**9)] = None,
) -> Response:
    """Filters travel in the query string: they are search terms, never secrets."""
    now = ctx.clock.now()
    flt = inventory.CertificateFilter(
        name=name.strip() or None,
        expiring_within_days=EXPIRING_DAYS if expiring else None,
        revoked={"": None, "active": False, "revoked": True}[state],
    )
    with ctx.db.read() as conn:
        orgs = org_store.list_orgs(conn)
        certs = inventory.list_certificates(conn, flt, now)
        shown = renewals.renewals_of(conn, certs)
    names = {o.id: o.name for o in orgs}
    rows = [
        views.certificate(c, now, shown[c.id])
        | {"org": names.get(c.org_id), "expired": c.not_after <= now}
        for c in sorted(certs, key=lambda c: c.not_after)
    ]
    return page(
        request,
        "certificates.html",
        viewer,
        certificates=rows,
        filters={"name": name, "expiring": expiring, "state": state},
        expiring_days=EXPIRING_DAYS,
        orgs=[{"id": o.id, "name": o.name} for o in orgs],
        pulled=pulled,
    )


@router.post("/certificates/renewal-windows")
def pull_forward_renewals(
    request: Request,
    viewer: Writer,
    ctx: Ctx,
    src: Source,
    reason: Annotated[str, Form(max_length=renewals.MAX_REASON)] = "",
    within_hours: Annotated[float, Form(ge=1 / 60, le=90 * 24)] = 24,
    org_id: Annotated[int | None, Form(ge=1, le=MAX_ROW_ID)] = None,
    name: Annotated[str, Form(max_length=253)] = "",
    serials: Annotated[str, Form(max_length=64 * 10_000)] = "",
) -> Response:
    """The API's pull-forward from the certificates page (serials one per line)."""
    back_to(request, "/certificates")
    selection = renewals.Selection(
        org_id=org_id,
        name=name.strip() or None,
        serials=tuple(line for line in serials.split() if line),
    )
    with ctx.db.write() as conn:
        done = ConsoleOperations(ctx, viewer.actor, src).pull_forward_renewals(
            conn, selection, reason=reason, within=timedelta(hours=within_hours)
        )
    return see_other(f"/certificates?pulled={done['count']}")


@router.get("/certificates/{cert_id}/pem")
def download_certificate(cert_id: str, _: SignedIn, ctx: Ctx) -> Response:
    with ctx.db.read() as conn:
        cert = inventory.get_certificate(conn, cert_id)
    return Response(
        cert.chain_pem,
        media_type="application/pem-certificate-chain",
        headers={"Content-Disposition": f'attachment; filename="{cert.serial_hex}.pem"'},
    )


@router.post("/certificates/{cert_id}/revoke")
def revoke_certificate(
    request: Request,
    cert_id: str,
    viewer: Writer,
    ctx: Ctx,
    src: Source,
    reason: Annotated[int, Form(ge=0, le=10)] = 0,
) -> Response:
    back_to(request, "/certificates")
    with ctx.db.write() as conn:
        # As the API does: audited, and this process's cached CRL dropped once committed.
        ConsoleOperations(ctx, viewer.actor, src).revoke_certificate(conn, cert_id, reason=reason)
    return see_other("/certificates")
