"""Failed console sign-ins: audited, counted in the database, and throttled.

Every worker reads the same count. After ``per_source`` failures from one address (IPv6
addresses by their /64, which one host usually holds) within the window, or ``overall``
failures from all addresses together, the login form answers 429 without looking at the
token until enough of those failures have aged out of the window. A refused attempt is
neither counted nor audited, so a flood adds no rows past the limits; a successful sign-in
forgets its address's failures. The presented token is never recorded: only its id part,
which is not secret, when it has the form of one.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.config import LimitsConfig
from acmefleet.store import audit
from acmefleet.store import login_failures as failure_store

UNKNOWN_SOURCE = "unknown"


@dataclass(frozen=True)
class Throttle:
    per_source: int
    overall: int
    window: timedelta

    @classmethod
    def of(cls, limits: LimitsConfig) -> Throttle:
        return cls(
            limits.login_failures_per_source, limits.login_failures_overall, limits.login_window
        )


def source_key(source: str | None) -> str:
    """The key failures are counted under: the address, or an IPv6 address's /64."""
    if not source:
        return UNKNOWN_SOURCE
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def retry_after(
    conn: Connection, throttle: Throttle, source: str | None, now: datetime
) -> int | None:
    """Whole seconds until a sign-in from ``source`` is looked at again; None: it is now."""
    since = now - throttle.window
    waits = []
    for who, limit in ((source_key(source), throttle.per_source), (None, throttle.overall)):
        times = failure_store.recent(conn, since=since, limit=limit, source=who)
        if len(times) >= limit:
            waits.append(times[-1] + throttle.window - now)  # when the limit-th latest ages out
    if not waits:
        return None
    return max(1, math.ceil(max(waits).total_seconds()))


def record_failure(
    conn: Connection,
    throttle: Throttle,
    *,
    source: str | None,
    now: datetime,
    token_id: str | None,
) -> None:
    """Count and audit one failed sign-in (``token_id``: the id part presented, if any)."""
    failure_store.prune(conn, now - throttle.window)
    failure_store.record(conn, source=source_key(source), at=now)
    audit.record(
        conn,
        at=now,
        actor="anonymous",
        action="console.login_failed",
        target=token_id or "-",
        source=source,
        details={"reason": "unknown, revoked or wrong token"},
    )


def forget_failures(conn: Connection, source: str | None) -> None:
    failure_store.clear(conn, source_key(source))
