"""Who am I, the endpoints, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from acmefleet.console.api.deps import Caller, ReadConn, Reader

router = APIRouter(tags=["meta"])


@router.get("/whoami")
def whoami(who: Caller) -> dict[str, Any]:
    return {"token_id": who.token_id, "name": who.name, "role": who.role}


@router.get("/endpoints")
def list_endpoints(ops: Reader) -> list[dict[str, Any]]:
    return ops.list_endpoints()


@router.get("/audit")
def audit_log(
    ops: Reader, conn: ReadConn, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    return ops.audit(conn, limit)


@router.get("/audit/verify")
def verify_audit_log(ops: Reader, conn: ReadConn) -> dict[str, Any]:
    """Recompute the audit log's hash chain: ``intact`` false lists what was tampered with."""
    return ops.verify_audit(conn)
