"""Renewal information (RFC 9773): operator-set windows and which orders replace what."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import certificates, orders, renewal_windows


@dataclass(frozen=True)
class SetWindow:
    """A window an operator set for one certificate, and why."""

    certificate_id: str
    start: datetime
    end: datetime
    reason: str
    requested_by: str
    requested_at: datetime


_WINDOW = Prepared(
    select(renewal_windows).where(renewal_windows.c.certificate_id == bindparam("p_id"))
)
# An order that replaced the certificate: finalized into a certificate (RFC 9773 §5 "marked
# as replaced by a different finalized Order"); orders still on their way do not count.
_REPLACED_BY = Prepared(
    select(orders.c.id)
    .where(
        orders.c.replaces_certificate == bindparam("p_id"),
        orders.c.finalization == "valid",
        orders.c.id != bindparam("p_order"),
    )
    .limit(1)
)


def _set_window(row: Any) -> SetWindow:
    return SetWindow(
        certificate_id=row.certificate_id,
        start=row.window_start,
        end=row.window_end,
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
    )


def window_of(conn: Connection, certificate_id: str) -> SetWindow | None:
    row = _WINDOW.first(conn, {"p_id": certificate_id})
    return None if row is None else _set_window(row)


def all_windows(conn: Connection) -> dict[str, SetWindow]:
    """Every window an operator set, by certificate id (for listing the inventory)."""
    return {row.certificate_id: _set_window(row) for row in conn.execute(select(renewal_windows))}


def replaced_certificates(conn: Connection) -> set[str]:
    """The ids of certificates a finalized order replaced."""
    query = select(orders.c.replaces_certificate).where(
        orders.c.replaces_certificate.is_not(None), orders.c.finalization == "valid"
    )
    return {row.replaces_certificate for row in conn.execute(query)}


def set_windows(conn: Connection, windows: Iterable[SetWindow]) -> int:
    """Store each window, replacing any set before for its certificate; how many."""
    rows = [
        {
            "certificate_id": w.certificate_id,
            "window_start": w.start,
            "window_end": w.end,
            "reason": w.reason,
            "requested_by": w.requested_by,
            "requested_at": w.requested_at,
        }
        for w in windows
    ]
    if not rows:
        return 0
    ids = [r["certificate_id"] for r in rows]
    conn.execute(delete(renewal_windows).where(renewal_windows.c.certificate_id.in_(ids)))
    conn.execute(insert(renewal_windows), rows)
    return len(rows)


def replaced_by(conn: Connection, certificate_id: str, other_than: str = "") -> str | None:
    """The id of a finalized order, other than ``other_than``, that replaced the certificate."""
    row = _REPLACED_BY.first(conn, {"p_id": certificate_id, "p_order": other_than})
    return None if row is None else str(row.id)


def lock_certificate(conn: Connection, certificate_id: str) -> None:
    """Hold the certificate's row until the transaction ends (PostgreSQL; SQLite's write
    transaction holds the whole database already): two finalizes replacing it take turns."""
    conn.execute(
        select(certificates.c.id).where(certificates.c.id == certificate_id).with_for_update()
    )
