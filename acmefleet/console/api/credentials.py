"""EAB credentials: mint (the HMAC key is in this one response), list, show, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from acmefleet.console.api.bodies import EabCreate
from acmefleet.console.api.deps import Ctx, ReadConn, Reader, Writer

router = APIRouter(tags=["eab"])


@router.get("/eab")
def list_credentials(ops: Reader, conn: ReadConn) -> list[dict[str, Any]]:
    return ops.list_eab(conn)


@router.post("/eab", status_code=201)
def mint_credential(body: EabCreate, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.mint_eab(conn, body.org_id, body.endpoint, days=body.days)


@router.get("/eab/{kid}")
def show_credential(kid: str, ops: Reader, conn: ReadConn) -> dict[str, Any]:
    return ops.get_eab(conn, kid)


@router.post("/eab/{kid}/revoke")
def revoke_credential(kid: str, ops: Writer, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.write() as conn:
        return ops.revoke_eab(conn, kid)
