"""Who am I, the endpoints, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from acmefleet.console import views
from acmefleet.console.api.deps import Caller, Ctx, ReadConn
from acmefleet.store import audit

router = APIRouter(tags=["meta"])


@router.get("/whoami")
def whoami(who: Caller) -> dict[str, Any]:
    return {"token_id": who.token_id, "name": who.name, "role": who.role}


@router.get("/endpoints")
def list_endpoints(_: Caller, ctx: Ctx) -> list[dict[str, Any]]:
    descriptions = {name: p.description for name, p in ctx.profiles.items()}
    return [views.endpoint(ctx.config, name, descriptions) for name in ctx.config.endpoints]


@router.get("/audit")
def audit_log(
    _: Caller, conn: ReadConn, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    return [views.audit_event(e) for e in audit.list_events(conn, limit)]
