"""A challenge left processing is resumed after a restart only within its deadline.

``policy.challenges.start`` records when validation was asked for; ``validate`` (what
a process of the validation queue runs, also one taken over after a restart or a crash) gives
the validator only what is left of its deadline since then, and past it makes the challenge
invalid without another attempt. A web server that hangs every attempt, or a server that
keeps restarting, can no longer keep a challenge processing for ever.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest

from acmefleet.clock import FixedClock
from acmefleet.config import Limit
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.models import Authorization, Challenge
from acmefleet.policy import challenges as challenge_policy
from acmefleet.policy.ratelimits import window_start
from acmefleet.store import orders as order_store
from acmefleet.store import ratelimits as counter_store
from acmefleet.store.engine import Database
from acmefleet.validation.base import ChallengeValidator
from tests.unit import rows
from tests.unit.rows import NOW

CONNECTION = "urn:ietf:params:acme:error:connection"


class Validator:
    """Answers after ``delay`` seconds (real time), counting its calls."""

    challenge_type = "http-01"

    def __init__(self, deadline: float, delay: float = 0.0) -> None:
        self.deadline = timedelta(seconds=deadline)
        self.delay = delay
        self.calls = 0

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        self.calls += 1
        await asyncio.sleep(self.delay)


class Failing(Validator):
    """Answers wrongly after ``delay`` seconds."""

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        await super().validate(identifier, token, key_authorization)
        raise AcmeError(ProblemType.INCORRECT_RESPONSE, "not the key authorization")


def _processing(database: Database, validator: ChallengeValidator, since: datetime) -> Challenge:
    """A pending challenge whose validation was asked for at ``since``."""
    with database.write() as conn:
        authz = rows.authorization(conn, rows.account(conn, "public"))
        [challenge] = authz.challenges
        assert challenge_policy.start(conn, challenge, authz, {"http-01": validator}, since)
        stored = order_store.get_challenge(conn, challenge.id)
    assert stored is not None and stored.status == "processing"
    assert stored.processing_since == since
    return stored


def _validate(
    database: Database, validator: ChallengeValidator, challenge: Challenge, at: datetime
) -> float:
    started = time.monotonic()
    asyncio.run(
        challenge_policy.validate(database, FixedClock(at), {"http-01": validator}, challenge.id)
    )
    return time.monotonic() - started


def _stored(database: Database, challenge: Challenge) -> tuple[Challenge, Authorization]:
    with database.read() as conn:
        found = order_store.get_challenge(conn, challenge.id)
        authz = order_store.get_authorization(conn, challenge.authz_id)
    assert found is not None and authz is not None
    return found, authz


def test_a_fresh_validation_runs_and_succeeds(database: Database) -> None:
    validator = Validator(deadline=5)
    challenge = _processing(database, validator, NOW)
    _validate(database, validator, challenge, NOW)
    found, authz = _stored(database, challenge)
    assert (found.status, authz.stored_status, validator.calls) == ("valid", "valid", 1)


def test_resumed_past_its_deadline_it_becomes_invalid_without_another_attempt(
    database: Database,
) -> None:
    validator = Validator(deadline=5)
    challenge = _processing(database, validator, NOW - timedelta(hours=1))
    _validate(database, validator, challenge, NOW)
    found, authz = _stored(database, challenge)
    assert validator.calls == 0
    assert (found.status, authz.stored_status) == ("invalid", "invalid")
    assert found.error is not None and found.error["type"] == CONNECTION
    assert found.error["detail"] == "the validation did not finish within 5 s of being requested"
    assert found.error["identifier"] == {"type": "dns", "value": "a.example.com"}


def test_resumed_within_its_deadline_it_gets_only_the_rest(database: Database) -> None:
    """Asked for 1 s ago with a 2 s deadline: a validator that would take 10 s is stopped
    about a second (plus the grace) later, not after its own full deadline or never."""
    validator = Validator(deadline=2, delay=10)
    challenge = _processing(database, validator, NOW - timedelta(seconds=1))
    took = _validate(database, validator, challenge, NOW)
    found, _authz = _stored(database, challenge)
    assert validator.calls == 1
    assert found.status == "invalid" and found.error is not None
    assert found.error["type"] == CONNECTION
    assert took < 1 + challenge_policy.GRACE.total_seconds() + 1.5, f"took {took:.1f} s"


def test_restarts_cannot_keep_a_hanging_challenge_processing(database: Database) -> None:
    """Each restart cuts the attempt short (shutdown cancels it): once the deadline since the
    request has passed, the next start ends the challenge instead of trying again."""
    validator = Validator(deadline=5, delay=60)
    challenge = _processing(database, validator, NOW)

    async def interrupted(at: datetime) -> None:
        task = asyncio.create_task(
            challenge_policy.validate(
                database, FixedClock(at), {"http-01": validator}, challenge.id
            )
        )
        await asyncio.sleep(0.2)
        task.cancel()  # what ValidationQueue.stop does to work that outlives the drain
        with pytest.raises(asyncio.CancelledError):
            await task

    for seconds in (0, 2, 4):
        asyncio.run(interrupted(NOW + timedelta(seconds=seconds)))
        assert _stored(database, challenge)[0].status == "processing"
    assert validator.calls == 3

    _validate(database, validator, challenge, NOW + timedelta(seconds=6))
    found, authz = _stored(database, challenge)
    assert validator.calls == 3, "no attempt past the deadline"
    assert (found.status, authz.stored_status) == ("invalid", "invalid")


def test_a_challenge_with_no_start_on_record_is_not_run_again(database: Database) -> None:
    validator = Validator(deadline=5)
    challenge = _processing(database, validator, NOW)
    with database.write() as conn:  # as an older server would have left it
        order_store.set_challenge_state(
            conn, challenge.id, expected="processing", status="processing"
        )
    _validate(database, validator, challenge, NOW)
    assert validator.calls == 0
    assert _stored(database, challenge)[0].status == "invalid"


def test_resumed_by_every_worker_a_failure_counts_once(database: Database) -> None:
    """Every worker of a restarted server resumes every challenge left processing. The first
    to finish records the outcome; the others' are dropped (the state changes only from
    processing), and so must their failures be: the account's count of failed validations
    (its rate limit) goes up by one, not by one per worker. Seen in the crash drill's logs."""
    validator = Failing(deadline=5, delay=0.2)
    challenge = _processing(database, validator, NOW)
    limit = Limit(10, timedelta(hours=1))

    async def two_workers() -> None:
        await asyncio.gather(
            *(
                challenge_policy.validate(
                    database, FixedClock(NOW), {"http-01": validator}, challenge.id, limit
                )
                for _ in range(2)
            )
        )

    asyncio.run(two_workers())
    found, authz = _stored(database, challenge)
    assert validator.calls == 2  # both read it processing before either wrote
    assert (found.status, authz.stored_status) == ("invalid", "invalid")
    key = challenge_policy.failures_key(authz.account_id)
    with database.read() as conn:
        assert counter_store.hits(conn, key, window_start(NOW, limit.window)) == 1
