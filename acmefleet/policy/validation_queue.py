"""One server process's share of the validation queue.

Every process (worker, replica) runs one :class:`ValidationQueue`. It claims queued
validations (``processing`` challenges, see ``store.validation_queue``) up to
``max_concurrent`` at once, runs each through ``policy.challenges.validate`` and renews its
leases while they run. It looks for work when woken (a challenge POST of this process, after
its commit), when one of its validations ends, and every ``poll_interval`` (work queued by
the other processes, and leases left behind by a process that died).

A lease never outlasts the validation's deadline (counted from the request, plus policy's
grace): a process killed mid-validation leaves work that another process claims at the
latest then, and ends at once as out of time, or sooner, with what is left of the deadline.
A process of the same host (and pid namespace) whose owner has died (a restarted server, a
killed worker) takes its validations over at once instead of waiting for the leases.
Shutdown lets running validations finish for a while, then cancels the rest and gives their
leases back, so another process resumes them without waiting for the leases to run out.
A validation whose outcome the database could not take (it was away: a restart, a failover)
is given back the same way as soon as the database answers again, and runs again with what
is left of its deadline, rather than waiting for its lease, which may last to the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from acmefleet.clock import Clock
from acmefleet.config import Limit
from acmefleet.errors import StoreUnavailable
from acmefleet.models import Challenge
from acmefleet.policy import challenges as challenge_policy
from acmefleet.policy.caa import CaaContext
from acmefleet.policy.lease_loop import LeaseLoop
from acmefleet.store import validation_queue as queue_store
from acmefleet.store.engine import Database
from acmefleet.validation.base import ChallengeValidator

log = logging.getLogger(__name__)
# How long shutdown waits for running validations before cancelling and releasing them.
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class QueueSettings:
    max_concurrent: int
    lease: timedelta
    poll_interval: timedelta


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # no /proc: never judge another process dead (see died_here)
        return ""


def new_owner() -> str:
    """This process's lease owner id: host, pid namespace, pid and a random part (a pid is
    reused in time; the random part tells two owners with one pid apart)."""
    host = socket.gethostname()[:32]
    return f"{host}:{_pid_namespace()}:{os.getpid()}:{secrets.token_hex(4)}"


def died_here(owner: str, me: str) -> bool:
    """``owner`` was a process of this host and pid namespace that no longer runs (a worker
    killed, or a server restarted): its validations need not wait for its leases to run
    out. Anything else (another host or container, a process still there, a zombie not yet
    reaped) is left to the lease."""
    theirs, mine = owner.split(":"), me.split(":")
    if len(theirs) != 4 or len(mine) != 4 or not mine[1] or theirs[:2] != mine[:2]:
        return False
    if owner == me or not theirs[2].isdigit():
        return False
    pid = int(theirs[2])
    if pid == os.getpid():
        return False  # another queue of this process, or a pid reused: left to the lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@dataclass
class _Job:
    task: asyncio.Task[None]
    # Past this the validation is over whatever happens: the lease ends here at the latest.
    ends: datetime


class ValidationQueue(LeaseLoop):
    name = "validation-queue"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        validators: Mapping[str, ChallengeValidator],
        settings: QueueSettings,
        failure_limit: Limit | None = None,
        owner: str | None = None,
        *,
        endpoints: Mapping[str, Mapping[str, ChallengeValidator]] | None = None,
        caa: CaaContext | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.validators = validators
        self.settings = settings
        self.failure_limit = failure_limit
        # Validators per endpoint (corroborated on a public endpoint with perspectives) and
        # the CAA check a proven name must then pass (public endpoints; None: off).
        self.endpoints = endpoints
        self.caa = caa
        self.owner = owner or new_owner()
        self._jobs: dict[str, _Job] = {}
        # Validations that ended on StoreUnavailable: their leases, to give back.
        self._unrecorded: set[str] = set()
        super().__init__(self.settings.lease, self.settings.poll_interval)
        self.peak = 0  # the most validations this process ran at once

    @property
    def running(self) -> int:
        return len(self._jobs)

    async def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Claim nothing more; let running validations finish within ``drain_seconds``,
        then cancel the rest and release their leases."""
        await self._halt((job.task for job in self._jobs.values()), drain_seconds)
        left = sorted({*self._jobs, *self._unrecorded})
        if left:
            with self.db.write() as conn:
                released = queue_store.release(conn, left, self.owner)
            log.info("validation queue: released %d lease(s) at shutdown", released)
        self._jobs.clear()
        self._unrecorded.clear()

    def _round(self) -> None:
        self._give_back()
        self._claim()

    def _give_back(self) -> None:
        """Release the leases of validations the database could not record, once it
        answers again (StoreUnavailable until then: the next round tries again)."""
        if not self._unrecorded:
            return
        with self.db.write() as conn:
            released = queue_store.release(conn, self._unrecorded, self.owner)
        log.info("validation queue: gave back %d unrecorded validation(s)", released)
        self._unrecorded.clear()

    def _lease_end(self, now: datetime, ends: datetime) -> datetime:
        return min(now + self.settings.lease, ends)

    def _claim(self) -> None:
        free = self.settings.max_concurrent - len(self._jobs)
        if free <= 0:
            return
        now = self.clock.now()
        # Looked for in a read transaction: most polls find nothing, and must not take
        # SQLite's write lock from the ACME requests for that. A few more than the free
        # slots, as another process may claim some first; the claim itself decides.
        with self.db.read() as conn:
            candidates: list[tuple[Challenge, str | None]] = [
                (c, None) for c in queue_store.queued(conn, now, free * 2)
            ]
            candidates += [
                (c, owner)
                for c, owner in queue_store.leased(conn, now)
                if died_here(owner, self.owner)
            ]
        candidates = [
            (c, dead)
            for c, dead in candidates
            if c.type in self.validators and c.id not in self._jobs
        ]
        if not candidates:
            return
        started: list[tuple[str, datetime]] = []
        with self.db.write() as conn:
            for challenge, dead in candidates:
                if len(started) == free:
                    break
                since = challenge.processing_since or now
                ends = since + self.validators[challenge.type].deadline + challenge_policy.GRACE
                until = self._lease_end(now, ends)
                if dead is None:
                    claimed = queue_store.claim(conn, challenge.id, self.owner, now, until)
                else:
                    claimed = queue_store.take_over(conn, challenge.id, dead, self.owner, until)
                    if claimed:
                        log.info(
                            "validation queue: took challenge %s over from %s (gone)",
                            challenge.id,
                            dead,
                        )
                if claimed:
                    started.append((challenge.id, ends))
        # Started once the claims are committed, so a validation never runs on a lease that
        # was rolled back.
        for challenge_id, ends in started:
            task = asyncio.get_running_loop().create_task(
                self._validate(challenge_id), name=f"validate-{challenge_id}"
            )
            self._jobs[challenge_id] = _Job(task, ends)
        self.peak = max(self.peak, len(self._jobs))

    def _renew(self) -> None:
        if not self._jobs:
            return
        now = self.clock.now()
        with self.db.write() as conn:
            lost = [
                challenge_id
                for challenge_id, job in self._jobs.items()
                if not queue_store.renew(
                    conn, challenge_id, self.owner, self._lease_end(now, job.ends)
                )
            ]
        for challenge_id in lost:
            # Recorded by another process (its outcome stands) or claimed by one after this
            # process stalled past its lease: this attempt's result would be dropped anyway.
            log.warning("validation queue: lost the lease on challenge %s", challenge_id)
            self._jobs[challenge_id].task.cancel()

    async def _validate(self, challenge_id: str) -> None:
        try:
            await challenge_policy.validate(
                self.db,
                self.clock,
                self.validators,
                challenge_id,
                self.failure_limit,
                caa=self.caa,
                endpoints=self.endpoints,
            )
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as unavailable:  # given back once the database answers again
            log.warning("validation of challenge %s failed: %s", challenge_id, unavailable)
            self._unrecorded.add(challenge_id)
        except Exception:  # policy records validator errors; this is the database failing
            log.exception("validation of challenge %s failed", challenge_id)
        finally:
            if not self._stopping:
                self._jobs.pop(challenge_id, None)
                self._work_done()
