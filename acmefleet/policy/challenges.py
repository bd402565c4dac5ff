"""Challenges: start validation (saved as processing first), then record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import Connection

from acmefleet.clock import Clock
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.models import Account, Authorization, Challenge
from acmefleet.store import accounts as account_store
from acmefleet.store import orders as order_store
from acmefleet.store.engine import Database
from acmefleet.validation.base import ChallengeValidator

log = logging.getLogger(__name__)


def key_authorization(token: str, account: Account) -> str:
    return f"{token}.{account.thumbprint}"


def start(
    conn: Connection,
    challenge: Challenge,
    authz: Authorization,
    validators: Mapping[str, object],
    now_status: str,
) -> bool:
    """Mark a pending challenge processing; True if validation must be started."""
    if challenge.type not in validators:
        raise AcmeError(ProblemType.MALFORMED, f"challenge type {challenge.type} is not offered")
    if now_status != "pending" or challenge.status != "pending":
        return False
    return order_store.set_challenge_state(
        conn, challenge.id, expected="pending", status="processing"
    )


async def validate(
    db: Database, clock: Clock, validators: Mapping[str, ChallengeValidator], challenge_id: str
) -> None:
    """Run the validator for a processing challenge and store the result."""
    with db.read() as conn:
        challenge = order_store.get_challenge(conn, challenge_id)
        if challenge is None or challenge.status != "processing":
            return
        authz = order_store.get_authorization(conn, challenge.authz_id)
        assert authz is not None
        account = account_store.get_account(conn, authz.account_id)
        assert account is not None
    validator = validators[challenge.type]
    error: dict[str, object] | None = None
    try:
        await validator.validate(
            authz.identifier, challenge.token, key_authorization(challenge.token, account)
        )
    except AcmeError as exc:
        exc.identifier = exc.identifier or authz.identifier.as_wire()
        error = exc.as_problem()
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
        else:
            order_store.set_challenge_state(
                conn, challenge_id, expected="processing", status="invalid", error=error
            )
            order_store.set_authorization_status(
                conn, authz.id, expected="pending", status="invalid"
            )
    log.info(
        "challenge %s for %s: %s",
        challenge_id,
        authz.identifier.value,
        "valid" if error is None else error.get("type"),
    )
