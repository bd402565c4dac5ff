"""Rate limits: what one account, organisation, credential or address may do per window.

Counters live in the database (``store.ratelimits``), so every worker and replica sees the
same counts. Two kinds:

* **actions** (a new account, a new order) are counted in the request's own transaction:
  a refused request rolls back and so uses nothing up;
* **failures** (a wrong EAB, a failed validation) are checked before the attempt and
  counted when it fails, in a transaction of their own (``after_rollback``), since the
  failed request's transaction is rolled back.

A refusal is ``rateLimited`` (HTTP 429) with ``Retry-After`` set to the end of the window.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from acmefleet.config import Limit
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.store import ratelimits as counter_store
from acmefleet.store.engine import after_rollback

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the fixed window holding ``now`` (aligned to the epoch)."""
    size = window.total_seconds()
    elapsed = (now - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(elapsed / size) * size)


def rate_limited(what: str, limit: Limit, now: datetime) -> AcmeError:
    end = window_start(now, limit.window) + limit.window
    retry = max(1, math.ceil((end - now).total_seconds()))
    return AcmeError(
        ProblemType.RATE_LIMITED,
        f"too many {what}: at most {limit.count} per {_duration(limit.window)}; "
        f"retry after {retry} s",
        status=429,
        headers={"Retry-After": str(retry)},
    )


def _duration(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} s"


def address_key(source: str | None) -> str:
    """The address a limit counts against: IPv4 as is, IPv6 by its /64 (one site)."""
    if source is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def take(conn: Connection, limit: Limit | None, key: str, now: datetime, what: str) -> None:
    """Count one action against ``key``; ``rateLimited`` if it goes over the limit."""
    if limit is None:
        return
    if counter_store.count(conn, key, window_start(now, limit.window)) > limit.count:
        raise rate_limited(what, limit, now)


def refuse_when_exhausted(
    conn: Connection, limit: Limit | None, key: str, now: datetime, what: str
) -> None:
    """``rateLimited`` if ``key`` already used up its failures in this window."""
    if limit is None:
        return
    if counter_store.hits(conn, key, window_start(now, limit.window)) >= limit.count:
        raise rate_limited(what, limit, now)


def count_if_refused(conn: Connection, limit: Limit | None, key: str, now: datetime) -> None:
    """Count a failure against ``key`` should the transaction of ``conn`` roll back."""
    if limit is None:
        return
    start = window_start(now, limit.window)
    after_rollback(conn, lambda fresh: _count(fresh, key, start))


def _count(conn: Connection, key: str, start: datetime) -> None:
    counter_store.count(conn, key, start)


def count_failure(conn: Connection, limit: Limit | None, key: str, now: datetime) -> None:
    """Count a failure against ``key`` in ``conn``'s transaction (already a failure's)."""
    if limit is not None:
        counter_store.count(conn, key, window_start(now, limit.window))


def check_pending_authorizations(
    conn: Connection, limit: int | None, account_id: str, new: int, now: datetime
) -> None:
    """``rateLimited`` if ``new`` pending authorizations would exceed the account's cap."""
    if limit is None or new == 0:
        return
    pending = counter_store.pending_authorizations(conn, account_id, now)
    if pending + new > limit:
        raise AcmeError(
            ProblemType.RATE_LIMITED,
            f"too many pending authorizations: the account has {pending}, at most {limit}; "
            "complete or deactivate some, or wait for them to expire",
            status=429,
            headers={"Retry-After": "3600"},
        )
