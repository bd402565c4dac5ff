"""The loop a server process runs over work queued in the database (validations, relayed
orders): a round of claims when woken and every poll interval, lease renewals every third
of a lease, and a shutdown that lets running work finish for a while before cancelling it.

What a round claims, how leases are renewed and given back is each queue's own
(``policy.validation_queue``, ``policy.relay_queue``); the loop's timing and its survival
of a failing database are shared here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import timedelta

from acmefleet.errors import StoreUnavailable

log = logging.getLogger(__name__)


class LeaseLoop:
    """Subclasses give ``name``, ``_round`` and ``_renew``; ``lease`` is how long a claim
    holds unrenewed, ``poll_interval`` how often to look for work unwoken."""

    name = "lease-loop"

    def __init__(self, lease: timedelta, poll_interval: timedelta) -> None:
        self.lease = lease
        self.poll_interval = poll_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    def _round(self) -> None:
        """Claim what there is to claim (a database failure is logged; the next round)."""
        raise NotImplementedError

    def _renew(self) -> None:
        """Renew the leases of the work running here."""
        raise NotImplementedError

    def start(self) -> None:
        """Begin claiming work (on the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._runner = self._loop.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Look for work now (safe from any thread; a no-op before ``start``). Work queued
        while this process is not running stays in the database for the others."""
        if self._loop is not None and self._wakeup is not None and not self._stopping:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def _work_done(self) -> None:
        """A piece of work ended: a slot is free, look for the next at once."""
        if not self._stopping and self._wakeup is not None:
            self._wakeup.set()

    async def _halt(self, running: Iterable[asyncio.Task[None]], drain_seconds: float) -> None:
        """Claim nothing more; let ``running`` finish within ``drain_seconds``, then cancel
        what is left (its leases are the caller's to give back)."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._runner is not None:
            self._runner.cancel()
            # wait, not await: the runner's cancellation stays its own, and a caller's
            # cancellation of stop() still reaches the caller.
            await asyncio.wait({self._runner})
        tasks = set(running)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=drain_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        assert self._wakeup is not None
        renew_every = self.lease.total_seconds() / 3
        wait = min(self.poll_interval.total_seconds(), renew_every)
        loop = asyncio.get_running_loop()
        next_renewal = loop.time() + renew_every
        # Checked as well as cancelled: a cancellation that lands as the wake-up does can be
        # lost, and stop() would then wait for this loop for ever.
        while not self._stopping:
            self._wakeup.clear()
            try:
                self._round()
                if loop.time() >= next_renewal:
                    self._renew()
                    next_renewal = loop.time() + renew_every
            except StoreUnavailable as unavailable:  # it passes: the next round retries
                log.warning("%s: claiming or renewing failed: %s", self.name, unavailable)
            except Exception:  # a database hiccup must not end the loop for this process
                log.exception("%s: claiming or renewing failed", self.name)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that arrives as the event is set.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
