"""Authorization updates by the client (RFC 8555 §7.5.2): deactivation only.

The decision (which payload is accepted, which states may change) lives here rather
than in the HTTP handler, so the handler only renders what policy returns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from acmefleet.errors import malformed
from acmefleet.models import Authorization
from acmefleet.store import orders as order_store

# Only these may move to "deactivated"; any other state is answered as it stands (§7.5.2).
DEACTIVATABLE = ("pending", "valid")


def deactivate(
    conn: Connection, authz: Authorization, payload: dict[str, Any], now: datetime
) -> Authorization:
    """Deactivate ``authz`` if the payload asks for it; the authorization as now stored.

    A payload other than ``{"status": "deactivated"}`` is malformed. An authorization in
    any other state (invalid, deactivated, expired, revoked) is returned unchanged, not
    refused: the client learns its current state from the answer. The write is guarded
    by the status read, so a concurrent change wins and is what gets returned.
    """
    if payload.get("status") != "deactivated":
        raise malformed("an authorization can only be updated to status 'deactivated'")
    if authz.status(now) not in DEACTIVATABLE:
        return authz
    order_store.set_authorization_status(
        conn, authz.id, expected=authz.stored_status, status="deactivated"
    )
    stored = order_store.get_authorization(conn, authz.id)
    assert stored is not None, "an authorization is never deleted"
    return stored
