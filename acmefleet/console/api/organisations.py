"""Organisations, their domains, domain validation and delegation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter

from acmefleet.console import delegations, domain_checks, organisations, views
from acmefleet.console.api.bodies import DelegationCreate, DomainCreate, OrgCreate, Validation
from acmefleet.console.api.deps import Admin, Caller, Ctx, ReadConn, RowId, Source, WriteConn
from acmefleet.console.errors import ConsoleError
from acmefleet.store import orgs as org_store

router = APIRouter(tags=["organisations"])


@router.get("/organizations")
def list_organisations(_: Caller, conn: ReadConn) -> list[dict[str, Any]]:
    return [views.organisation(o) for o in org_store.list_orgs(conn)]


@router.post("/organizations", status_code=201)
def create_organisation(
    body: OrgCreate, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    org = organisations.create(conn, body.name, actor=who.actor, now=ctx.clock.now(), source=src)
    return views.organisation(org)


@router.get("/organizations/{org_id}")
def show_organisation(org_id: RowId, _: Caller, conn: ReadConn) -> dict[str, Any]:
    return views.organisation(organisations.get_by_id(conn, org_id))


@router.post("/organizations/{org_id}/disable")
def disable_organisation(
    org_id: RowId, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    org = organisations.set_status(
        conn, org_id, "disabled", actor=who.actor, now=ctx.clock.now(), source=src
    )
    return views.organisation(org)


@router.post("/organizations/{org_id}/enable")
def enable_organisation(
    org_id: RowId, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    org = organisations.set_status(
        conn, org_id, "active", actor=who.actor, now=ctx.clock.now(), source=src
    )
    return views.organisation(org)


@router.get("/organizations/{org_id}/domains")
def list_domains(org_id: RowId, _: Caller, ctx: Ctx, conn: ReadConn) -> list[dict[str, Any]]:
    organisations.get_by_id(conn, org_id)
    now = ctx.clock.now()
    return [views.domain(d, now) for d in org_store.list_domains(conn, org_id)]


@router.post("/organizations/{org_id}/domains", status_code=201)
def add_domain(
    org_id: RowId, body: DomainCreate, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    org = organisations.get_by_id(conn, org_id)
    now = ctx.clock.now()
    added = organisations.add_domain(
        conn, org.name, body.name, validated=False, actor=who.actor, now=now, source=src
    )
    return views.domain(added, now)


@router.get("/domains/{domain_id}")
def show_domain(domain_id: RowId, _: Caller, ctx: Ctx, conn: ReadConn) -> dict[str, Any]:
    return views.domain(organisations.get_domain(conn, domain_id), ctx.clock.now())


@router.delete("/domains/{domain_id}", status_code=204)
def remove_domain(domain_id: RowId, who: Admin, ctx: Ctx, conn: WriteConn, src: Source) -> None:
    organisations.remove_domain(conn, domain_id, actor=who.actor, now=ctx.clock.now(), source=src)


@router.post("/domains/{domain_id}/validation")
def validate_domain(
    domain_id: RowId, body: Validation, who: Admin, ctx: Ctx, src: Source
) -> dict[str, Any]:
    """``manual`` records a justified validation; ``http-01`` starts a control check and
    returns the token and content the domain must serve before ``validation/check``."""
    now = ctx.clock.now()
    if body.method == "manual":
        with ctx.db.write() as conn:
            done = organisations.validate_manually(
                conn,
                domain_id,
                justification=body.justification or "",
                actor=who.actor,
                now=now,
                lifetime=timedelta(days=body.days),
                source=src,
            )
            return views.domain(done, now)
    pending = domain_checks.start(
        ctx.db,
        ctx.clock,
        domain_id,
        http01_port=ctx.config.validation.http01_port,
        actor=who.actor,
        source=src,
    )
    return {
        "domain": pending.domain,
        "method": "http-01",
        "token": pending.token,
        "url": pending.url,
        "expected_content": pending.expected_content,
    }


@router.post("/domains/{domain_id}/validation/check")
async def check_domain(domain_id: RowId, who: Admin, ctx: Ctx, src: Source) -> dict[str, Any]:
    validator = ctx.validators.get("http-01")
    if validator is None:
        raise ConsoleError("http-01 validation is not configured")
    await domain_checks.check(ctx.db, ctx.clock, validator, domain_id, actor=who.actor, source=src)
    with ctx.db.read() as conn:
        return views.domain(organisations.get_domain(conn, domain_id), ctx.clock.now())


@router.delete("/domains/{domain_id}/validation")
def unvalidate_domain(
    domain_id: RowId, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    now = ctx.clock.now()
    return views.domain(
        organisations.unvalidate(conn, domain_id, actor=who.actor, now=now, source=src), now
    )


@router.get("/domains/{domain_id}/delegations")
def list_delegations(domain_id: RowId, _: Caller, conn: ReadConn) -> list[dict[str, Any]]:
    return [views.delegation(d) for d in delegations.list_for_domain(conn, domain_id)]


@router.post("/domains/{domain_id}/delegations", status_code=201)
def add_delegation(
    domain_id: RowId, body: DelegationCreate, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    made = delegations.delegate(
        conn,
        domain_id,
        account_id=body.account_id,
        eab_kid=body.eab_kid,
        actor=who.actor,
        now=ctx.clock.now(),
        source=src,
    )
    return views.delegation(made)


@router.delete("/delegations/{delegation_id}", status_code=204)
def remove_delegation(
    delegation_id: RowId, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> None:
    delegations.remove(conn, delegation_id, actor=who.actor, now=ctx.clock.now(), source=src)
