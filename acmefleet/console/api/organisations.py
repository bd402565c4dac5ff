"""Organisations, their domains, domain validation and delegation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from acmefleet.console import domain_checks
from acmefleet.console.api.bodies import DelegationCreate, DomainCreate, OrgCreate, Validation
from acmefleet.console.api.deps import Ctx, ReadConn, Reader, RowId, Writer
from acmefleet.console.errors import ConsoleError
from acmefleet.console.organisations import DEFAULT_MANUAL_SCOPE

router = APIRouter(tags=["organisations"])


@router.get("/organizations")
def list_organisations(ops: Reader, conn: ReadConn) -> list[dict[str, Any]]:
    return ops.list_orgs(conn)


@router.post("/organizations", status_code=201)
def create_organisation(body: OrgCreate, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.create_org(conn, body.name)


@router.get("/organizations/{org_id}")
def show_organisation(org_id: RowId, ops: Reader, conn: ReadConn) -> dict[str, Any]:
    return ops.get_org(conn, org_id)


@router.post("/organizations/{org_id}/disable")
def disable_organisation(org_id: RowId, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.set_org_status(conn, org_id, "disabled")


@router.post("/organizations/{org_id}/enable")
def enable_organisation(org_id: RowId, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.set_org_status(conn, org_id, "active")


@router.get("/organizations/{org_id}/domains")
def list_domains(org_id: RowId, ops: Reader, conn: ReadConn) -> list[dict[str, Any]]:
    return ops.list_domains(conn, org_id)


@router.post("/organizations/{org_id}/domains", status_code=201)
def add_domain(org_id: RowId, body: DomainCreate, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.add_domain(conn, org_id, body.name)


@router.get("/domains/{domain_id}")
def show_domain(domain_id: RowId, ops: Reader, conn: ReadConn) -> dict[str, Any]:
    return ops.get_domain(conn, domain_id)


@router.delete("/domains/{domain_id}", status_code=204)
def remove_domain(domain_id: RowId, ops: Writer, ctx: Ctx) -> None:
    with ctx.db.write() as conn:
        ops.remove_domain(conn, domain_id)


@router.post("/domains/{domain_id}/validation")
def validate_domain(domain_id: RowId, body: Validation, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    """``manual`` records a justified validation of ``scope`` (default ``exact``). ``http-01``
    and ``dns`` start a control check and return what the domain must show before
    ``validation/check``: the token and content its web server serves (http-01, scope
    ``exact``), or the Random Value its TXT record at ``record_name`` holds (dns, scope
    ``subdomains``); ``expires`` is when that value stops being accepted."""
    if body.method == "manual":
        with ctx.db.write() as conn:
            return ops.validate_manually(
                conn,
                domain_id,
                justification=body.justification or "",
                days=body.days,
                scope=body.scope or DEFAULT_MANUAL_SCOPE,
            )
    proven = domain_checks.SCOPES[body.method]
    if body.scope not in (None, proven):
        raise ConsoleError(
            f"a {body.method} check validates with the scope '{proven}' only"
            + (
                " (the name itself): 'subdomains' needs a dns check"
                if proven == "exact"
                else " (the name, its subdomains and wildcards)"
            )
        )
    return ops.start_check(domain_id, body.method)


@router.post("/domains/{domain_id}/validation/check")
async def check_domain(domain_id: RowId, ops: Writer) -> dict[str, Any]:
    return await ops.check_domain(domain_id)


@router.delete("/domains/{domain_id}/validation")
def unvalidate_domain(domain_id: RowId, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.unvalidate(conn, domain_id)


@router.get("/domains/{domain_id}/delegations")
def list_delegations(domain_id: RowId, ops: Reader, conn: ReadConn) -> list[dict[str, Any]]:
    return ops.list_delegations(conn, domain_id)


@router.post("/domains/{domain_id}/delegations", status_code=201)
def add_delegation(
    domain_id: RowId, body: DelegationCreate, ops: Writer, ctx: Ctx
) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.delegate(conn, domain_id, account_id=body.account_id, eab_kid=body.eab_kid)


@router.delete("/delegations/{delegation_id}", status_code=204)
def remove_delegation(delegation_id: RowId, ops: Writer, ctx: Ctx) -> None:
    with ctx.db.write() as conn:
        ops.undelegate(conn, delegation_id)
