"""The upstream CA's renewal windows of relayed certificates (RFC 9773 pass-through).

A row per certificate relayed from an upstream, made when the relay stores it. The relay's
processes fetch the upstream's window when a row is due and write it here; renewalInfo
serves it. A process takes a due row by moving its ``next_fetch_at`` on by compare-and-set
before it asks the upstream, so two processes (workers, replicas) do not both ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, update

from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import certificates
from acmefleet.store.schema import upstream_renewal_windows as table


@dataclass(frozen=True)
class UpstreamWindow:
    start: datetime
    end: datetime
    fetched_at: datetime


@dataclass(frozen=True)
class DueFetch:
    """A relayed certificate whose upstream window is to be fetched (again)."""

    certificate_id: str
    upstream: str
    chain_pem: str
    not_after: datetime
    revoked: bool
    failures: int
    next_fetch_at: datetime  # as read: the claim's compare-and-set condition


_WINDOW = Prepared(
    select(table.c.window_start, table.c.window_end, table.c.fetched_at).where(
        table.c.certificate_id == bindparam("p_id")
    )
)
_DUE = Prepared(
    select(
        table.c.certificate_id,
        table.c.upstream,
        table.c.failures,
        table.c.next_fetch_at,
        certificates.c.chain_pem,
        certificates.c.not_after,
        certificates.c.revoked_at,
    )
    .join(certificates, certificates.c.id == table.c.certificate_id)
    .where(table.c.next_fetch_at <= bindparam("p_now"))
    .order_by(table.c.next_fetch_at)
    .limit(bindparam("p_limit"))
)
_CLAIM = Prepared(
    update(table)
    .where(
        table.c.certificate_id == bindparam("p_id"), table.c.next_fetch_at == bindparam("p_seen")
    )
    .values(next_fetch_at=bindparam("p_until"))
)
# Written only by the process whose claim still stands (``next_fetch_at`` as it set it): a
# process that stalled past its claim must not overwrite a newer answer.
_CLAIMED = and_(
    table.c.certificate_id == bindparam("p_id"), table.c.next_fetch_at == bindparam("p_claim")
)
_FETCHED = Prepared(
    update(table)
    .where(_CLAIMED)
    .values(
        window_start=bindparam("p_start"),
        window_end=bindparam("p_end"),
        fetched_at=bindparam("p_now"),
        next_fetch_at=bindparam("p_next"),
        failures=0,
    )
)
_FAILED = Prepared(
    update(table)
    .where(_CLAIMED)
    .values(next_fetch_at=bindparam("p_next"), failures=table.c.failures + 1)
)
# Certificates past their end or revoked: nothing more to ask (renew now, whatever the
# upstream says), in one statement however many there are.
_ENDED = Prepared(
    delete(table).where(
        table.c.certificate_id.in_(
            select(certificates.c.id).where(
                certificates.c.id == table.c.certificate_id,
                or_(
                    certificates.c.not_after <= bindparam("p_now"),
                    certificates.c.revoked_at.is_not(None),
                ),
            )
        )
    )
)
_FORGET = Prepared(delete(table).where(table.c.certificate_id == bindparam("p_id")))


def track(conn: Connection, certificate_id: str, upstream: str, first_fetch: datetime) -> None:
    """Follow the upstream's window of a certificate just relayed from it."""
    conn.execute(
        insert(table).values(
            certificate_id=certificate_id,
            upstream=upstream,
            next_fetch_at=first_fetch,
            failures=0,
        )
    )


def window_of(conn: Connection, certificate_id: str) -> UpstreamWindow | None:
    """The upstream's last window for the certificate (None: none fetched, or no ARI)."""
    row = _WINDOW.first(conn, {"p_id": certificate_id})
    if row is None or row.window_start is None or row.window_end is None:
        return None
    return UpstreamWindow(row.window_start, row.window_end, row.fetched_at)


def all_windows(conn: Connection) -> dict[str, UpstreamWindow]:
    """Every window fetched, by certificate id (for listing the inventory)."""
    rows = conn.execute(
        select(
            table.c.certificate_id, table.c.window_start, table.c.window_end, table.c.fetched_at
        ).where(table.c.window_start.is_not(None), table.c.window_end.is_not(None))
    )
    return {
        r.certificate_id: UpstreamWindow(r.window_start, r.window_end, r.fetched_at) for r in rows
    }


def due(conn: Connection, now: datetime, limit: int) -> list[DueFetch]:
    return [
        DueFetch(
            certificate_id=row.certificate_id,
            upstream=row.upstream,
            chain_pem=row.chain_pem,
            not_after=row.not_after,
            revoked=row.revoked_at is not None,
            failures=row.failures,
            next_fetch_at=row.next_fetch_at,
        )
        for row in _DUE.rows(conn, {"p_now": now, "p_limit": limit})
    ]


def claim(conn: Connection, fetch: DueFetch, until: datetime) -> bool:
    """Take the fetch: no other process takes it before ``until`` (its retry if this one
    dies mid-fetch)."""
    params = {"p_id": fetch.certificate_id, "p_seen": fetch.next_fetch_at, "p_until": until}
    return _CLAIM.run(conn, params) == 1


def record_window(
    conn: Connection,
    certificate_id: str,
    claim: datetime,
    window: tuple[datetime, datetime] | None,
    now: datetime,
    next_fetch: datetime,
) -> bool:
    """What the upstream answered (None: it offers no renewalInfo) and when to ask again,
    by the holder of ``claim`` (the ``until`` it claimed the fetch with); False: not it."""
    start, end = window if window is not None else (None, None)
    params = {
        "p_id": certificate_id,
        "p_claim": claim,
        "p_start": start,
        "p_end": end,
        "p_now": now,
        "p_next": next_fetch,
    }
    return _FETCHED.run(conn, params) == 1


def record_failure(
    conn: Connection, certificate_id: str, claim: datetime, next_fetch: datetime
) -> bool:
    """The upstream did not answer: the window fetched before stays, asked again later."""
    params = {"p_id": certificate_id, "p_claim": claim, "p_next": next_fetch}
    return _FAILED.run(conn, params) == 1


def forget_ended(conn: Connection, now: datetime) -> int:
    """Stop following certificates that expired or were revoked; how many."""
    return _ENDED.run(conn, {"p_now": now})


def forget(conn: Connection, certificate_id: str) -> None:
    """No more fetches: the certificate expired or was revoked (renew now, whatever the
    upstream says)."""
    _FORGET.run(conn, {"p_id": certificate_id})
