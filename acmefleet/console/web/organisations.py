"""Organisations, their domains, and the validation of those domains."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request, Response
from sqlalchemy import Connection

from acmefleet.console import domain_checks, organisations, views
from acmefleet.console.context import ConsoleContext
from acmefleet.console.errors import NotFound
from acmefleet.console.operations import ConsoleOperations
from acmefleet.console.web.deps import Ctx, RowId, SignedIn, Source, Writer, back_to
from acmefleet.console.web.render import page, see_other
from acmefleet.models import OrgDomain
from acmefleet.store import eab as eab_store
from acmefleet.store import orgs as org_store

router = APIRouter()

OrgName = Annotated[str, Form(min_length=1, max_length=200)]
DomainName = Annotated[str, Form(min_length=1, max_length=253)]
Justification = Annotated[str, Form(max_length=1000)]
Days = Annotated[int, Form(ge=1, le=825)]
Scope = Annotated[Literal["exact", "subdomains"], Form()]


def _org_domain(conn: Connection, org_id: int, domain_id: int) -> OrgDomain:
    """The domain, only through the organisation that owns it."""
    organisations.get_by_id(conn, org_id)
    domain = organisations.get_domain(conn, domain_id)
    if domain.org_id != org_id:
        raise NotFound(f"organisation {org_id} has no domain with id {domain_id}")
    return domain


def _pending_check(ctx: ConsoleContext, domain: OrgDomain, now: datetime) -> dict[str, Any] | None:
    """The check in progress, as the API shows it (None: none running, or it expired)."""
    found = domain_checks.pending(domain, now, http01_port=ctx.config.validation.http01_port)
    return views.pending_check(found) if found is not None else None


@router.get("/orgs")
def list_organisations(request: Request, viewer: SignedIn, ctx: Ctx) -> Response:
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        orgs = org_store.list_orgs(conn)
        domains = org_store.list_all_domains(conn)
    rows: list[dict[str, Any]] = []
    for org in orgs:
        own = [d for d in domains if d.org_id == org.id]
        rows.append(
            views.organisation(org)
            | {"domains": len(own), "validated": sum(d.is_validated(now) for d in own)}
        )
    return page(request, "organisations.html", viewer, orgs=rows)


@router.post("/orgs")
def create_organisation(
    request: Request, viewer: Writer, ctx: Ctx, src: Source, name: OrgName
) -> Response:
    back_to(request, "/orgs")
    with ctx.db.write() as conn:
        org = organisations.create(conn, name, actor=viewer.actor, now=ctx.clock.now(), source=src)
    return see_other(f"/orgs/{org.id}")


@router.get("/orgs/{org_id}")
def show_organisation(request: Request, org_id: RowId, viewer: SignedIn, ctx: Ctx) -> Response:
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        org = organisations.get_by_id(conn, org_id)
        domains = org_store.list_domains(conn, org_id)
        credentials = [c for c in eab_store.list_credentials(conn) if c.org_id == org_id]
    rows = [
        views.domain(d, now)
        | {"expired": d.validated_until is not None and not d.is_validated(now)}
        # Before its validated_until, yet out of force: a checked validation older than the
        # BR reuse period in force now (the period shrinks over the years).
        | {"lapsed": d.validated_until is not None and d.validated_until > now}
        | {"pending": _pending_check(ctx, d, now)}
        for d in domains
    ]
    return page(
        request,
        "organisation.html",
        viewer,
        org=views.organisation(org),
        domains=rows,
        credentials=[views.credential(c, now, org.name) for c in credentials],
        endpoints=list(ctx.config.endpoints),
    )


@router.post("/orgs/{org_id}/disable")
def disable_organisation(
    request: Request, org_id: RowId, viewer: Writer, ctx: Ctx, src: Source
) -> Response:
    return _set_status(request, org_id, "disabled", viewer.actor, ctx, src)


@router.post("/orgs/{org_id}/enable")
def enable_organisation(
    request: Request, org_id: RowId, viewer: Writer, ctx: Ctx, src: Source
) -> Response:
    return _set_status(request, org_id, "active", viewer.actor, ctx, src)


def _set_status(
    request: Request, org_id: int, status: str, actor: str, ctx: ConsoleContext, src: str | None
) -> Response:
    back_to(request, f"/orgs/{org_id}")
    with ctx.db.write() as conn:
        organisations.set_status(conn, org_id, status, actor=actor, now=ctx.clock.now(), source=src)
    return see_other(f"/orgs/{org_id}")


@router.post("/orgs/{org_id}/domains")
def add_domain(
    request: Request, org_id: RowId, viewer: Writer, ctx: Ctx, src: Source, name: DomainName
) -> Response:
    back_to(request, f"/orgs/{org_id}")
    with ctx.db.write() as conn:
        org = organisations.get_by_id(conn, org_id)
        organisations.add_domain(
            conn,
            org.name,
            name,
            validated=False,
            actor=viewer.actor,
            now=ctx.clock.now(),
            source=src,
        )
    return see_other(f"/orgs/{org_id}")


@router.post("/orgs/{org_id}/domains/{domain_id}/validate")
def validate_manually(
    request: Request,
    org_id: RowId,
    domain_id: RowId,
    viewer: Writer,
    ctx: Ctx,
    src: Source,
    justification: Justification = "",
    days: Days = 397,
    scope: Scope = organisations.DEFAULT_MANUAL_SCOPE,
) -> Response:
    back_to(request, f"/orgs/{org_id}")
    with ctx.db.write() as conn:
        _org_domain(conn, org_id, domain_id)
        organisations.validate_manually(
            conn,
            domain_id,
            justification=justification,
            actor=viewer.actor,
            now=ctx.clock.now(),
            lifetime=timedelta(days=days),
            scope=scope,
            source=src,
        )
    return see_other(f"/orgs/{org_id}#domain-{domain_id}")


@router.post("/orgs/{org_id}/domains/{domain_id}/http-01")
def start_http01(
    request: Request, org_id: RowId, domain_id: RowId, viewer: Writer, ctx: Ctx, src: Source
) -> Response:
    """Start a check; the organisation page then shows the token, URL and expected content."""
    back_to(request, f"/orgs/{org_id}")
    with ctx.db.read() as conn:
        _org_domain(conn, org_id, domain_id)
    ConsoleOperations(ctx, viewer.actor, src).start_http01(domain_id)
    return see_other(f"/orgs/{org_id}#domain-{domain_id}")


@router.post("/orgs/{org_id}/domains/{domain_id}/dns")
def start_dns(
    request: Request, org_id: RowId, domain_id: RowId, viewer: Writer, ctx: Ctx, src: Source
) -> Response:
    """Start a DNS check; the organisation page then shows the TXT record and its expiry."""
    back_to(request, f"/orgs/{org_id}")
    with ctx.db.read() as conn:
        _org_domain(conn, org_id, domain_id)
    ConsoleOperations(ctx, viewer.actor, src).start_dns(domain_id)
    return see_other(f"/orgs/{org_id}#domain-{domain_id}")


@router.post("/orgs/{org_id}/domains/{domain_id}/check")
async def check_domain(
    request: Request, org_id: RowId, domain_id: RowId, viewer: Writer, ctx: Ctx, src: Source
) -> Response:
    back_to(request, f"/orgs/{org_id}")
    with ctx.db.read() as conn:
        _org_domain(conn, org_id, domain_id)
    await ConsoleOperations(ctx, viewer.actor, src).check_domain(domain_id)
    return see_other(f"/orgs/{org_id}#domain-{domain_id}")


@router.post("/orgs/{org_id}/domains/{domain_id}/unvalidate")
def unvalidate(
    request: Request, org_id: RowId, domain_id: RowId, viewer: Writer, ctx: Ctx, src: Source
) -> Response:
    back_to(request, f"/orgs/{org_id}")
    with ctx.db.write() as conn:
        _org_domain(conn, org_id, domain_id)
        ConsoleOperations(ctx, viewer.actor, src).unvalidate(conn, domain_id)
    return see_other(f"/orgs/{org_id}#domain-{domain_id}")


@router.post("/orgs/{org_id}/domains/{domain_id}/remove")
def remove_domain(
    request: Request, org_id: RowId, domain_id: RowId, viewer: Writer, ctx: Ctx, src: Source
) -> Response:
    back_to(request, f"/orgs/{org_id}")
    with ctx.db.write() as conn:
        _org_domain(conn, org_id, domain_id)
        ConsoleOperations(ctx, viewer.actor, src).remove_domain(conn, domain_id)
    return see_other(f"/orgs/{org_id}")
