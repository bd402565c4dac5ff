"""The server's periodic clean-up: bounded tables without an operator's cron job, and each
CA's CRL republished on schedule (or after a revocation nobody has fetched a CRL since)."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from acmefleet.ca.hierarchy import Authority
from acmefleet.clock import Clock
from acmefleet.config import MAX_LIMIT_WINDOW
from acmefleet.errors import StoreUnavailable
from acmefleet.policy.crl_publication import publish_stale
from acmefleet.store import housekeeping
from acmefleet.store.engine import Database

log = logging.getLogger(__name__)
BATCH = 500  # rows of a kind per transaction: short write locks on a busy database


@dataclass(frozen=True)
class Retention:
    # How long an expired order or authorization is kept before it is deleted: clients
    # that poll an order just after it expired still get an answer, not a 404.
    keep_expired: timedelta
    every: timedelta


def prune_round(db: Database, clock: Clock, retention: Retention) -> housekeeping.Pruned:
    """One short transaction: at most ``BATCH`` rows of each kind."""
    now = clock.now()
    with db.write() as conn:
        return housekeeping.prune(
            conn,
            now=now,
            expired_before=now - retention.keep_expired,
            batch=BATCH,
            counters_before=now - MAX_LIMIT_WINDOW,
        )


async def prune_all(db: Database, clock: Clock, retention: Retention) -> housekeeping.Pruned:
    """Rounds until one finds less than a batch, yielding to requests between rounds."""
    orders = authorizations = nonces = counters = 0
    while True:
        done = prune_round(db, clock, retention)
        orders, authorizations = orders + done.orders, authorizations + done.authorizations
        nonces, counters = nonces + done.nonces, counters + done.counters
        if done.orders < BATCH and done.authorizations < BATCH:
            return housekeeping.Pruned(orders, authorizations, nonces, counters)
        await asyncio.sleep(0)


async def run_periodically(
    db: Database, clock: Clock, retention: Retention, authorities: dict[str, Authority]
) -> None:
    """Prune and publish CRLs, then sleep ``every`` (with jitter, so workers and replicas
    spread out)."""
    period = retention.every.total_seconds()
    await asyncio.sleep(random.uniform(0, min(period, 60.0)))  # noqa: S311 - not security
    while True:
        try:
            pruned = await prune_all(db, clock, retention)
            if pruned.total:
                log.info(
                    "pruned %d orders, %d authorizations, %d nonces, %d rate counters",
                    pruned.orders,
                    pruned.authorizations,
                    pruned.nonces,
                    pruned.counters,
                )
            published = publish_stale(db, authorities, clock)
            if published:
                log.info("published the CRL of %s", ", ".join(published))
        except StoreUnavailable as unavailable:  # it passes: the next round retries
            log.warning("housekeeping failed (%s); retrying in %.0f s", unavailable, period)
        except Exception:  # anything else: try again next round, with the trace logged
            log.exception("housekeeping failed; retrying in %.0f s", period)
        await asyncio.sleep(period * random.uniform(0.9, 1.1))  # noqa: S311
