"""The per-process validation queue (``policy.validation_queue.ValidationQueue``).

Each test runs real queues on one migrated SQLite database, each with its own engines as
separate processes have, against validators that take real time and count how many run at
once. (Real server processes and real http-01 targets: ``tests/integration/
test_validation_queue.py``.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.clock import SystemClock
from acmefleet.errors import StoreUnavailable
from acmefleet.identifiers import Identifier
from acmefleet.policy import challenges as challenge_policy
from acmefleet.policy.validation_queue import (
    QueueSettings,
    ValidationQueue,
    died_here,
    new_owner,
)
from acmefleet.store import orders as order_store
from acmefleet.store import validation_queue as queue_store
from acmefleet.store.engine import Database, open_database
from tests.unit import rows

CLOCK = SystemClock()


class SlowValidator:
    """Succeeds after ``delay`` s; counts calls per token and the most running at once."""

    challenge_type = "http-01"

    def __init__(self, delay: float, deadline: float = 10.0) -> None:
        self.delay = delay
        self.deadline = timedelta(seconds=deadline)
        self.calls: dict[str, int] = {}
        self.running = 0
        self.peak = 0

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        self.calls[token] = self.calls.get(token, 0) + 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1


def _settings(max_concurrent: int = 4, lease: float = 3.0, poll: float = 0.1) -> QueueSettings:
    return QueueSettings(max_concurrent, timedelta(seconds=lease), timedelta(seconds=poll))


def _enqueue(database: Database, count: int, since: datetime | None = None) -> dict[str, str]:
    """``count`` processing challenges (asked for at ``since``, default now): id -> token."""
    queued: dict[str, str] = {}
    with database.write() as conn:
        owner = rows.account(conn, "public")
        for n in range(count):
            authz = rows.authorization(
                conn, owner, value=f"h{n}.example.com", expires_at=CLOCK.now() + timedelta(1)
            )
            [challenge] = authz.challenges
            validators = {"http-01": SlowValidator(0)}
            assert challenge_policy.start(conn, challenge, authz, validators, since or CLOCK.now())
            queued[challenge.id] = challenge.token
    return queued


def _statuses(database: Database, ids: list[str]) -> dict[str, str]:
    with database.read() as conn:
        found = {i: order_store.get_challenge(conn, i) for i in ids}
    return {i: c.status for i, c in found.items() if c is not None}


async def _until_done(database: Database, ids: list[str], timeout: float) -> dict[str, str]:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        statuses = _statuses(database, ids)
        if "processing" not in statuses.values():
            return statuses
        await asyncio.sleep(0.05)
    return _statuses(database, ids)


def test_a_process_runs_at_most_max_concurrent_at_once(database: Database) -> None:
    queued = _enqueue(database, 10)
    validator = SlowValidator(delay=0.3)

    async def scenario() -> dict[str, str]:
        worker = ValidationQueue(database, CLOCK, {"http-01": validator}, _settings(3))
        worker.start()
        try:
            return await _until_done(database, list(queued), 20)
        finally:
            await worker.stop()

    statuses = asyncio.run(scenario())
    assert set(statuses.values()) == {"valid"}
    assert validator.peak == 3
    assert sorted(validator.calls) == sorted(queued.values())
    assert set(validator.calls.values()) == {1}


def test_two_processes_share_the_queue_and_validate_each_once(database: Database) -> None:
    queued = _enqueue(database, 24)
    first, second = SlowValidator(delay=0.2), SlowValidator(delay=0.2)

    async def scenario() -> dict[str, str]:
        other_db = open_database(database.writer.url.render_as_string(hide_password=False))
        workers = [
            ValidationQueue(database, CLOCK, {"http-01": first}, _settings(4)),
            ValidationQueue(other_db, CLOCK, {"http-01": second}, _settings(4)),
        ]
        for worker in workers:
            worker.start()
        try:
            return await _until_done(database, list(queued), 30)
        finally:
            for worker in workers:
                await worker.stop()
            other_db.dispose()

    statuses = asyncio.run(scenario())
    assert set(statuses.values()) == {"valid"}
    tokens = list(first.calls) + list(second.calls)
    assert sorted(tokens) == sorted(queued.values()), "each validated once, by one of them"
    assert first.calls and second.calls, "both took part"
    assert max(first.peak, second.peak) <= 4


def test_a_dead_processs_lease_runs_out_and_another_finishes_it(database: Database) -> None:
    """A lease left by a process that died is taken over once it runs out; the validation
    still gets what is left of its deadline from the request."""
    [(challenge_id, token)] = _enqueue(database, 1).items()
    now = CLOCK.now()
    with database.write() as conn:
        assert queue_store.claim(conn, challenge_id, "dead", now, now + timedelta(seconds=1))
    validator = SlowValidator(delay=0.1)

    async def scenario() -> tuple[dict[str, str], float]:
        worker = ValidationQueue(database, CLOCK, {"http-01": validator}, _settings())
        started = time.monotonic()
        worker.start()
        try:
            statuses = await _until_done(database, [challenge_id], 10)
            return statuses, time.monotonic() - started
        finally:
            await worker.stop()

    statuses, took = asyncio.run(scenario())
    assert statuses == {challenge_id: "valid"}
    assert validator.calls == {token: 1}
    assert 0.5 < took < 3, f"taken over after {took:.1f} s (the lease ran out after 1 s)"


@dataclass(frozen=True)
class AwayDatabase(Database):
    """The database, refusing writes (StoreUnavailable) while ``away`` is set."""

    away: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        if self.away.is_set():
            raise StoreUnavailable("restarting (test)")
        with super().write() as conn:
            yield conn


class AwayWhileFirstValidating(SlowValidator):
    """The database goes away during the first validation and is back 0.3 s later."""

    def __init__(self, away: threading.Event, delay: float, deadline: float) -> None:
        super().__init__(delay, deadline)
        self.away = away

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        if not self.calls:
            self.away.set()
            asyncio.get_running_loop().call_later(0.3, self.away.clear)
        await super().validate(identifier, token, key_authorization)


def test_a_validation_the_database_could_not_record_runs_again_once_it_is_back(
    database: Database,
) -> None:
    """The database went away as a validation ended: its outcome was not recorded. Its
    lease, which here lasts to the deadline, is given back once the database answers
    again, and the validation runs again with what is left of its deadline: valid (left
    to its lease, it would end invalid, out of time)."""
    [(challenge_id, token)] = _enqueue(database, 1).items()
    flaky = AwayDatabase(writer=database.writer, reader=database.reader)
    validator = AwayWhileFirstValidating(flaky.away, delay=0.1, deadline=4)

    async def scenario() -> dict[str, str]:
        worker = ValidationQueue(flaky, CLOCK, {"http-01": validator}, _settings(lease=60))
        worker.start()
        try:
            return await _until_done(database, [challenge_id], 10)
        finally:
            await worker.stop()

    assert asyncio.run(scenario()) == {challenge_id: "valid"}
    assert validator.calls == {token: 2}


def test_a_dead_processs_work_past_its_deadline_ends_invalid(database: Database) -> None:
    """Asked for long ago and left leased by a dead process: no new attempt, invalid."""
    [challenge_id] = _enqueue(database, 1, since=CLOCK.now() - timedelta(minutes=5))
    with database.write() as conn:
        past = CLOCK.now() - timedelta(seconds=1)
        assert queue_store.claim(conn, challenge_id, "dead", past, past)
    validator = SlowValidator(delay=0.1, deadline=5)

    async def scenario() -> dict[str, str]:
        worker = ValidationQueue(database, CLOCK, {"http-01": validator}, _settings())
        worker.start()
        try:
            return await _until_done(database, [challenge_id], 10)
        finally:
            await worker.stop()

    assert asyncio.run(scenario()) == {challenge_id: "invalid"}
    assert validator.calls == {}


def test_shutdown_releases_what_it_could_not_finish(database: Database) -> None:
    """Stopping with validations still running: they are cancelled after the drain time and
    their leases given back, so another process resumes them at once; still processing."""
    queued = _enqueue(database, 3)
    validator = SlowValidator(delay=30)

    async def scenario() -> None:
        worker = ValidationQueue(database, CLOCK, {"http-01": validator}, _settings(lease=60))
        worker.start()
        ends = time.monotonic() + 5
        while validator.running < 3 and time.monotonic() < ends:
            await asyncio.sleep(0.05)
        assert validator.running == 3
        with database.read() as conn:
            assert {queue_store.lease_of(conn, i)[0] for i in queued} == {worker.owner}
        await worker.stop(drain_seconds=0.2)

    asyncio.run(scenario())
    assert set(_statuses(database, list(queued)).values()) == {"processing"}
    with database.read() as conn:
        assert {queue_store.lease_of(conn, i) for i in queued} == {(None, None)}
        assert len(queue_store.queued(conn, CLOCK.now(), 10)) == 3


def test_wake_starts_queued_work_before_the_next_poll(database: Database) -> None:
    validator = SlowValidator(delay=0)

    async def scenario() -> float:
        worker = ValidationQueue(
            database, CLOCK, {"http-01": validator}, _settings(lease=120, poll=30)
        )
        worker.start()
        await asyncio.sleep(0.2)  # its first look found nothing; the next poll is 30 s away
        try:
            [challenge_id] = _enqueue(database, 1)
            started = time.monotonic()
            worker.wake()
            statuses = await _until_done(database, [challenge_id], 5)
            assert statuses == {challenge_id: "valid"}
            return time.monotonic() - started
        finally:
            await worker.stop()

    assert asyncio.run(scenario()) < 2


def test_died_here_only_for_a_gone_process_of_this_host_and_namespace() -> None:
    me = new_owner()
    host, namespace, _pid, _rand = me.split(":")
    child = subprocess.Popen(["sleep", "30"])
    try:
        alive = f"{host}:{namespace}:{child.pid}:00000000"
        assert not died_here(alive, me)
    finally:
        child.kill()
        child.wait()
    assert died_here(alive, me), "reaped: gone"
    assert not died_here(f"{host}:{namespace}:{os.getpid()}:00000000", me), "still running"
    assert not died_here(me, me)
    assert not died_here(f"other-host:{namespace}:{child.pid}:00000000", me)
    assert not died_here(f"{host}:1:{child.pid}:00000000", me), "another pid namespace"
    assert not died_here("dead", me)


def test_a_gone_local_owners_validation_is_taken_over_before_its_lease_ends(
    database: Database,
) -> None:
    """A server restarted on the same host does not wait for the leases of its previous
    incarnation (here 60 s): it takes their validations over on its first look."""
    [(challenge_id, token)] = _enqueue(database, 1).items()
    child = subprocess.Popen(["true"])
    child.wait()
    host, namespace, _pid, _rand = new_owner().split(":")
    gone = f"{host}:{namespace}:{child.pid}:0badc0de"
    now = CLOCK.now()
    with database.write() as conn:
        assert queue_store.claim(conn, challenge_id, gone, now, now + timedelta(seconds=60))
    validator = SlowValidator(delay=0.1)

    async def scenario() -> tuple[dict[str, str], float]:
        worker = ValidationQueue(database, CLOCK, {"http-01": validator}, _settings(lease=60))
        started = time.monotonic()
        worker.start()
        try:
            statuses = await _until_done(database, [challenge_id], 10)
            return statuses, time.monotonic() - started
        finally:
            await worker.stop()

    statuses, took = asyncio.run(scenario())
    assert statuses == {challenge_id: "valid"}
    assert validator.calls == {token: 1}
    assert took < 3, f"took {took:.1f} s"


def test_stop_returns_when_it_lands_as_the_queue_wakes(database: Database) -> None:
    """Python 3.11's ``wait_for`` lost a cancellation that arrived as the wake-up event was
    set, and ``stop`` then waited for the claiming loop for ever (a CI run hung 600 s)."""

    async def scenario() -> int:
        hung = 0
        for _ in range(10):
            worker = ValidationQueue(database, CLOCK, {"http-01": SlowValidator(0)}, _settings())
            worker.start()
            await asyncio.sleep(0.01)
            assert worker._wakeup is not None
            worker._wakeup.set()  # the wake-up and the cancellation in one loop iteration
            stopping = asyncio.ensure_future(worker.stop())
            _done, pending = await asyncio.wait({stopping}, timeout=2)
            hung += len(pending)
            for task in pending:  # the old loop never ends by itself: end the test's tasks
                worker._stopping = True
                task.cancel()
        return hung

    assert asyncio.run(scenario()) == 0
