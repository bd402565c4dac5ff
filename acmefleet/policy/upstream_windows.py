"""Renewal windows passed through from the upstream CA (RFC 9773) for relayed certificates.

A relayed certificate is the upstream's: when the upstream pulls its window forward (an
incident of its own, a mis-issuance, a revocation there), the hosts must hear it from
acmefleet, whose renewalInfo they ask. So the relay's processes ask the upstream for each
relayed certificate's window in the background, as often as its ``Retry-After`` allows,
and store it (``store.upstream_windows``); renewalInfo serves it at once from the database.
Hosts' GETs never reach the upstream: anyone may fetch renewalInfo, and a relay must not
turn that into traffic at a CA that rate-limits its account.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509

from acmefleet.ca.renewal_info import CertIdError, cert_id_of
from acmefleet.clock import Clock
from acmefleet.errors import StoreUnavailable
from acmefleet.store import upstream_windows as window_store
from acmefleet.store.engine import Database
from acmefleet.upstream.client import RenewalWindow
from acmefleet.upstream.errors import UpstreamError

log = logging.getLogger(__name__)

# RFC 9773 §4.3: the client's Retry-After default and the bounds it is held within.
DEFAULT_RECHECK = timedelta(hours=6)
SHORTEST_RECHECK = timedelta(minutes=1)
LONGEST_RECHECK = timedelta(days=1)
# An upstream without renewalInfo may add it: its directory is read again after this.
NO_ARI_RECHECK = timedelta(days=1)
# A process that took a batch of fetches and died: they are due again after this.
CLAIM_HOLD = timedelta(minutes=15)
# How often the rows of certificates that expired or were revoked are dropped.
CLEANUP_EVERY = timedelta(minutes=10)
FIRST_FAILURE_RETRY = timedelta(minutes=1)


class WindowSource(Protocol):
    """What is asked for a window: ``UpstreamClient``."""

    async def renewal_info(self, cert_id: str) -> RenewalWindow | None: ...


def next_check(now: datetime, window: RenewalWindow | None) -> datetime:
    """When to ask again: the upstream's Retry-After, held within a minute and a day."""
    if window is None:
        return now + NO_ARI_RECHECK
    wait = DEFAULT_RECHECK if window.retry_after is None else timedelta(seconds=window.retry_after)
    return now + min(max(wait, SHORTEST_RECHECK), LONGEST_RECHECK)


def retry_after_failure(now: datetime, failures: int, retry_after: float | None) -> datetime:
    """After the ``failures``-th failure in a row: doubling from a minute to six hours,
    never sooner than the upstream's Retry-After."""
    wait = min(FIRST_FAILURE_RETRY * (1 << min(max(failures - 1, 0), 16)), DEFAULT_RECHECK)
    if retry_after is not None:
        wait = max(wait, timedelta(seconds=retry_after))
    return now + min(wait, LONGEST_RECHECK)


class UpstreamWindows:
    """One process's share of the fetching; ``round`` is called by the relay's loop."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        sources: Mapping[str, WindowSource],
        *,
        look_every: timedelta = timedelta(seconds=5),
        batch: int = 50,
        concurrency: int = 4,
    ) -> None:
        self.db = db
        self.clock = clock
        self.sources = sources
        self.look_every = look_every
        self.batch = batch
        self._asking = asyncio.Semaphore(concurrency)
        self._next_look: datetime | None = None
        self._next_cleanup: datetime | None = None
        self._running: set[asyncio.Task[None]] = set()

    def round(self) -> None:
        """Take what is due (at most every ``look_every``, a batch at a time) and fetch it in
        the background, ``concurrency`` questions at once."""
        now = self.clock.now()
        if self._running or (self._next_look is not None and now < self._next_look):
            return
        self._next_look = now + self.look_every
        if self._next_cleanup is None or now >= self._next_cleanup:
            self._next_cleanup = now + CLEANUP_EVERY
            with self.db.write() as conn:
                window_store.forget_ended(conn, now)
        with self.db.read() as conn:
            due = window_store.due(conn, now, self.batch)
        if not due:
            return
        until = now + CLAIM_HOLD
        with self.db.write() as conn:
            taken = [
                fetch
                for fetch in due
                if not fetch.revoked
                and fetch.not_after > now
                and window_store.claim(conn, fetch, until)
            ]
        for fetch in taken:  # once the claims are committed
            task = asyncio.get_running_loop().create_task(
                self._fetch(fetch, until), name=f"upstream-window-{fetch.certificate_id}"
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _fetch(self, fetch: window_store.DueFetch, claim: datetime) -> None:
        try:
            async with self._asking:
                await self._ask(fetch, claim)
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as unavailable:  # the claim runs out; asked again then
            log.warning("upstream window of %s: %s", fetch.certificate_id, unavailable)
        except Exception:
            # A bug or an answer no check caught: backed off like a failure of the
            # upstream's, never asked again at every claim's end.
            log.exception("upstream window of %s: failed", fetch.certificate_id)
            self._failed(fetch, claim, None)

    def _failed(self, fetch: window_store.DueFetch, claim: datetime, after: float | None) -> None:
        again = retry_after_failure(self.clock.now(), fetch.failures + 1, after)
        with self.db.write() as conn:
            window_store.record_failure(conn, fetch.certificate_id, claim, again)

    async def _ask(self, fetch: window_store.DueFetch, claim: datetime) -> None:
        source = self.sources.get(fetch.upstream)
        if source is None:  # not in this process's configuration: look again in a day
            with self.db.write() as conn:
                window_store.record_failure(
                    conn, fetch.certificate_id, claim, self.clock.now() + NO_ARI_RECHECK
                )
            return
        leaf = x509.load_pem_x509_certificates(fetch.chain_pem.encode("ascii"))[0]
        try:
            cert_id = str(cert_id_of(leaf))
            window = await source.renewal_info(cert_id)
        except (CertIdError, ValueError):  # nothing to ask with (no or an odd key identifier)
            with self.db.write() as conn:
                window_store.forget(conn, fetch.certificate_id)
            return
        except UpstreamError as error:
            self._failed(fetch, claim, error.retry_after)
            log.warning(
                "upstream window of %s at %s: %s",
                fetch.certificate_id,
                fetch.upstream,
                error.detail,
            )
            return
        now = self.clock.now()
        span = None if window is None else (window.start, window.end)
        with self.db.write() as conn:
            window_store.record_window(
                conn, fetch.certificate_id, claim, span, now, next_check(now, window)
            )
