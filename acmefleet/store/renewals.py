"""Renewal information (RFC 9773): operator-set windows and which order replaced what."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, or_, select, update

from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import certificates, renewal_windows


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
_CLAIM = Prepared(
    update(certificates)
    .where(
        certificates.c.id == bindparam("p_id"),
        or_(
            certificates.c.replaced_by.is_(None),
            certificates.c.replaced_by == bindparam("p_order"),
        ),
    )
    .values(replaced_by=bindparam("p_order"))
)
_REPLACED_BY = Prepared(
    select(certificates.c.replaced_by).where(certificates.c.id == bindparam("p_id"))
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


def set_windows(conn: Connection, windows: Iterable[SetWindow]) -> int:
    """Store each window, replacing any set before for its certificate; how many.

    The certificates' rows are locked first, in id order: two operators pulling the same
    certificates forward at once take turns (PostgreSQL) instead of both deleting, then
    both inserting, one row."""
    chosen = list(windows)
    rows = [
        {
            "certificate_id": w.certificate_id,
            "window_start": w.start,
            "window_end": w.end,
            "reason": w.reason,
            "requested_by": w.requested_by,
            "requested_at": w.requested_at,
        }
        for w in chosen
    ]
    if not rows:
        return 0
    ids = sorted(w.certificate_id for w in chosen)
    conn.execute(
        select(certificates.c.id)
        .where(certificates.c.id.in_(ids))
        .order_by(certificates.c.id)
        .with_for_update()
    )
    conn.execute(delete(renewal_windows).where(renewal_windows.c.certificate_id.in_(ids)))
    conn.execute(insert(renewal_windows), rows)
    return len(rows)


def replaced_by(conn: Connection, certificate_id: str) -> str | None:
    """The order that replaced the certificate (RFC 9773 §5), if one did."""
    found = _REPLACED_BY.scalar(conn, {"p_id": certificate_id})
    return None if found is None else str(found)


def claim_replacement(conn: Connection, certificate_id: str, order_id: str) -> bool:
    """Mark the certificate replaced by ``order_id`` unless another order did (compare and
    set: of two finalizes racing to replace it, one wins, on SQLite and PostgreSQL)."""
    return _CLAIM.run(conn, {"p_id": certificate_id, "p_order": order_id}) == 1


def release_replacement(conn: Connection, order_id: str) -> None:
    """The order that claimed a replacement ended without a certificate (a relayed order
    the upstream refused): the certificate it named may be replaced again."""
    conn.execute(
        update(certificates).where(certificates.c.replaced_by == order_id).values(replaced_by=None)
    )


def replaced_certificates(conn: Connection) -> set[str]:
    """The ids of certificates an order replaced."""
    query = select(certificates.c.id).where(certificates.c.replaced_by.is_not(None))
    return {row.id for row in conn.execute(query)}
