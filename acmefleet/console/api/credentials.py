"""EAB credentials: mint (the HMAC key is in this one response), list, show, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter

from acmefleet.console import credentials, organisations, views
from acmefleet.console.api.bodies import EabCreate
from acmefleet.console.api.deps import Admin, Caller, Ctx, ReadConn, Source, WriteConn
from acmefleet.console.errors import NotFound
from acmefleet.store import eab as eab_store
from acmefleet.store import orgs as org_store

router = APIRouter(tags=["eab"])


@router.get("/eab")
def list_credentials(_: Caller, ctx: Ctx, conn: ReadConn) -> list[dict[str, Any]]:
    now = ctx.clock.now()
    names = {o.id: o.name for o in org_store.list_orgs(conn)}
    return [views.credential(c, now, names.get(c.org_id)) for c in eab_store.list_credentials(conn)]


@router.post("/eab", status_code=201)
def mint_credential(
    body: EabCreate, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    org = organisations.get_by_id(conn, body.org_id)
    minted = credentials.mint(
        conn,
        ctx.config,
        org_name=org.name,
        endpoint=body.endpoint,
        actor=who.actor,
        now=ctx.clock.now(),
        lifetime=timedelta(days=body.days) if body.days else None,
        source=src,
    )
    return {
        "kid": minted.kid,
        "hmac_key": minted.hmac_key,
        "endpoint": minted.endpoint,
        "directory": minted.directory,
        "expires": minted.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@router.get("/eab/{kid}")
def show_credential(kid: str, _: Caller, ctx: Ctx, conn: ReadConn) -> dict[str, Any]:
    found = eab_store.get_credential(conn, kid)
    if found is None:
        raise NotFound(f"no EAB credential {kid!r}")
    org = org_store.get_org(conn, found.org_id)
    return views.credential(found, ctx.clock.now(), org.name if org else None)


@router.post("/eab/{kid}/revoke")
def revoke_credential(
    kid: str, who: Admin, ctx: Ctx, conn: WriteConn, src: Source
) -> dict[str, Any]:
    now = ctx.clock.now()
    credentials.revoke(conn, kid, actor=who.actor, now=now, source=src)
    found = eab_store.get_credential(conn, kid)
    assert found is not None
    org = org_store.get_org(conn, found.org_id)
    return views.credential(found, now, org.name if org else None)
