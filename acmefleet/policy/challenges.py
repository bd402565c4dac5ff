"""Challenges: start validation (saved as processing first), then record the outcome.

A challenge is ``processing`` from the moment validation is asked for until its outcome is
stored: it is then a queued validation, which one server process claims and runs
(``policy.validation_queue``). One taken over from a process that stopped or died is run
only within the validator's deadline counted from the request: past it, the challenge
becomes invalid without another attempt, so a web server that hangs every attempt cannot
keep it processing across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.clock import Clock
from acmefleet.config import Limit
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.models import Account, Authorization, Challenge
from acmefleet.policy import caa as caa_policy
from acmefleet.policy import ratelimits
from acmefleet.store import accounts as account_store
from acmefleet.store import orders as order_store
from acmefleet.store.engine import Database
from acmefleet.validation.base import ChallengeValidator

log = logging.getLogger(__name__)
# The validator's own deadline normally ends a validation first (with its own, more precise
# problem); this much later, policy ends it anyway.
GRACE = timedelta(seconds=1)


def key_authorization(token: str, account: Account) -> str:
    return f"{token}.{account.thumbprint}"


def failures_key(account_id: str) -> str:
    return f"validation-failures:account:{account_id}"


def start(
    conn: Connection,
    challenge: Challenge,
    authz: Authorization,
    validators: Mapping[str, object],
    now: datetime,
    failure_limit: Limit | None = None,
) -> bool:
    """Mark a pending challenge processing (since ``now``); True if validation must start.

    An account whose validations keep failing is refused (``rateLimited``) before another
    one costs the server a connection out."""
    if challenge.type not in validators:
        raise AcmeError(ProblemType.MALFORMED, f"challenge type {challenge.type} is not offered")
    if authz.status(now) != "pending" or challenge.status != "pending":
        return False
    ratelimits.refuse_when_exhausted(
        conn, failure_limit, failures_key(authz.account_id), now, "failed validations"
    )
    return order_store.set_challenge_state(
        conn, challenge.id, expected="pending", status="processing", processing_since=now
    )


def _out_of_time(deadline: timedelta) -> AcmeError:
    return AcmeError(
        ProblemType.CONNECTION,
        f"the validation did not finish within {deadline.total_seconds():g} s of being requested",
    )


async def _run(
    validator: ChallengeValidator,
    challenge: Challenge,
    authz: Authorization,
    account: Account,
    remaining: timedelta,
) -> None:
    """The validator, held to what is left of the challenge's deadline.

    The validator keeps its own deadline; this bound matters for a validation resumed after
    a restart (it gets only the rest) and for a validator that fails to keep its own.
    """
    if remaining <= timedelta(0):
        raise _out_of_time(validator.deadline)
    try:
        async with asyncio.timeout((remaining + GRACE).total_seconds()):
            await validator.validate(
                authz.identifier, challenge.token, key_authorization(challenge.token, account)
            )
    except TimeoutError:
        raise _out_of_time(validator.deadline) from None


async def validate(
    db: Database,
    clock: Clock,
    validators: Mapping[str, ChallengeValidator],
    challenge_id: str,
    failure_limit: Limit | None = None,
    *,
    caa: caa_policy.CaaContext | None = None,
    endpoints: Mapping[str, Mapping[str, ChallengeValidator]] | None = None,
) -> None:
    """Run the validator for a processing challenge and store the result (a failure
    counted against the account's ``failure_limit``). On a public endpoint (``caa`` given),
    a proven name's CAA must then allow issuance too, or the challenge fails with it.

    ``endpoints``: validators per endpoint (the account's), e.g. corroborated by remote
    perspectives on a public endpoint; an endpoint not in it uses ``validators``."""
    with db.read() as conn:
        challenge = order_store.get_challenge(conn, challenge_id)
        if challenge is None or challenge.status != "processing":
            return
        authz = order_store.get_authorization(conn, challenge.authz_id)
        assert authz is not None
        account = account_store.get_account(conn, authz.account_id)
        assert account is not None
    validator = (endpoints or {}).get(account.endpoint, validators)[challenge.type]
    # A challenge with no start on record (none should remain: migration 0007 stamps them)
    # counts as out of time rather than as one that may run again for ever.
    started = challenge.processing_since
    remaining = started + validator.deadline - clock.now() if started is not None else timedelta(0)
    error: dict[str, object] | None = None
    caa_checked_at: datetime | None = None
    try:
        await _run(validator, challenge, authz, account, remaining)
        if caa is not None:
            caa_checked_at = await caa_policy.after_validation(
                caa, account, authz, challenge.type, clock
            )
    except AcmeError as exc:
        error = exc.as_problem()
        error.setdefault("identifier", authz.identifier.as_wire())
    except Exception:  # a validator bug must not leave the challenge processing forever
        log.exception("validator %s failed on challenge %s", challenge.type, challenge_id)
        error = AcmeError(
            ProblemType.SERVER_INTERNAL, "validation failed unexpectedly"
        ).as_problem()
    now = clock.now()
    with db.write() as conn:
        if error is None:
            order_store.set_challenge_state(
                conn, challenge_id, expected="processing", status="valid", validated_at=now
            )
            order_store.set_authorization_status(conn, authz.id, expected="pending", status="valid")
            if caa_checked_at is not None:
                order_store.set_caa_checked(conn, authz.id, caa_checked_at)
        else:
            recorded = order_store.set_challenge_state(
                conn, challenge_id, expected="processing", status="invalid", error=error
            )
            order_store.set_authorization_status(
                conn, authz.id, expected="pending", status="invalid"
            )
            # Two workers may both run it (one whose lease ran out while it stalled): only
            # the outcome recorded (the first) counts as a failure, not one per worker.
            if recorded:
                ratelimits.count_failure(conn, failure_limit, failures_key(authz.account_id), now)
    log.info(
        "challenge %s for %s: %s",
        challenge_id,
        authz.identifier.value,
        "valid" if error is None else error.get("type"),
    )
