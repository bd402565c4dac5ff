"""Validation picks the validators of the account's endpoint (e.g. corroborated by remote
perspectives on a public endpoint, BR 3.2.2.9), and the server's own elsewhere."""

from __future__ import annotations

import asyncio

from acmefleet.clock import FixedClock
from acmefleet.policy import challenges as challenge_policy
from acmefleet.store.engine import Database
from tests.unit.policy.test_challenge_deadline import Failing, Validator, _processing, _stored
from tests.unit.rows import NOW


def test_the_accounts_endpoint_chooses_the_validator(database: Database) -> None:
    local, corroborating = Validator(deadline=5), Failing(deadline=5)
    challenge = _processing(database, local, NOW)  # an account of the "public" endpoint
    asyncio.run(
        challenge_policy.validate(
            database,
            FixedClock(NOW),
            {"http-01": local},
            challenge.id,
            endpoints={"public": {"http-01": corroborating}},
        )
    )
    found, _authz = _stored(database, challenge)
    assert (local.calls, corroborating.calls) == (0, 1)
    assert found.status == "invalid"


def test_an_endpoint_without_its_own_uses_the_servers(database: Database) -> None:
    local, elsewhere = Validator(deadline=5), Failing(deadline=5)
    challenge = _processing(database, local, NOW)
    asyncio.run(
        challenge_policy.validate(
            database,
            FixedClock(NOW),
            {"http-01": local},
            challenge.id,
            endpoints={"other": {"http-01": elsewhere}},
        )
    )
    found, _authz = _stored(database, challenge)
    assert (local.calls, elsewhere.calls, found.status) == (1, 0, "valid")
