"""When CAA is checked, and what its outcome does (public endpoints only).

* **After a challenge validates** (``after_validation``): the name's CAA, with the
  challenge's type as the RFC 8657 method. A forbidding record (or a failed lookup) makes the
  challenge and its authorization invalid; an allowing one is recorded on the authorization
  (``caa_checked_at``).
* **At finalize**: every name of the order whose check is older than ``MAX_AGE`` (8 hours,
  CA/B BR 3.2.2.8) or was never made (names validated in the console have no challenge) is
  checked again. The DNS work happens before the request's write transaction (no ``await``
  inside one): ``due`` lists the names from a read, the checks run, then ``apply_at_finalize``
  in the write transaction lists them again and takes only outcomes that cover every name
  still due. A forbidding record ends the order (``invalid``, the ``caa`` problem); a failed
  lookup refuses this finalize and leaves the order ready.

Private endpoints never check CAA: they issue from a private hierarchy, for names the
organisation owns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from acmefleet.clock import Clock
from acmefleet.config import EndpointConfig
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.models import Account, Authorization, Order
from acmefleet.policy.names import validated_domain
from acmefleet.store import orders as order_store
from acmefleet.store import orgs as org_store
from acmefleet.validation.caa import MAX_AGE, CaaCheck

# RFC 8657 §4: method labels are ACME challenge types, or CA-specific ones starting "ca-".
ACME_METHODS = frozenset({"http-01", "dns-01", "tls-alpn-01"})


@dataclass(frozen=True)
class CaaContext:
    """What policy needs to check CAA: the checker, the endpoints, and how an account's URL
    is written (the ACME front end's business, handed down)."""

    checker: CaaCheck
    endpoints: Mapping[str, EndpointConfig]
    account_uri: Callable[[Account], str]
    # Per endpoint: a public endpoint with remote perspectives has its check corroborated
    # (``validation/mpic.py``, BR 3.2.2.9); the others use ``checker``.
    endpoint_checkers: Mapping[str, CaaCheck] = field(default_factory=dict)

    def checker_for(self, account: Account) -> CaaCheck:
        return self.endpoint_checkers.get(account.endpoint, self.checker)

    def endpoint_checking(self, account: Account) -> EndpointConfig | None:
        """The account's endpoint if it checks CAA (a public one), else None."""
        endpoint = self.endpoints.get(account.endpoint)
        return endpoint if endpoint is not None and endpoint.type == "public" else None


def console_method(stored: str | None) -> str:
    """The RFC 8657 label of a console validation: its ACME type, else ``ca-<method>``."""
    if stored in ACME_METHODS:
        return stored
    return f"ca-{stored or 'console'}"


async def after_validation(
    caa: CaaContext, account: Account, authz: Authorization, method: str, clock: Clock
) -> datetime | None:
    """Check the name of an authorization a challenge just proved; the time the allowing
    check began (None where no check applies). Raises ``AcmeError`` (``caa``/``dns``)."""
    endpoint = caa.endpoint_checking(account)
    if endpoint is None or authz.identifier.type != "dns":
        return None
    started = clock.now()
    await caa.checker_for(account).check(
        authz.identifier.value,
        wildcard=authz.wildcard,
        account_uri=caa.account_uri(account),
        method=method,
        issuer_domains=endpoint.caa_identities,
    )
    return started


@dataclass(frozen=True)
class DueCheck:
    """A name of an order whose CAA must be checked before issuance."""

    authz_id: str
    name: str
    wildcard: bool
    method: str


@dataclass(frozen=True)
class Outcome:
    check: DueCheck
    started: datetime
    error: AcmeError | None


def _method(authz: Authorization, conn: Connection, account: Account, now: datetime) -> str:
    for challenge in authz.challenges:
        if challenge.status == "valid":
            return challenge.type
    # No challenge: granted because the domain is validated in the console.
    identifier = authz.identifier
    if authz.wildcard:
        identifier = Identifier(identifier.type, f"*.{identifier.value}")
    domain = validated_domain(org_store.list_domains(conn, account.org_id), identifier, now)
    return console_method(domain.validation_method if domain is not None else None)


def due(
    conn: Connection, endpoint: EndpointConfig, account: Account, order: Order, now: datetime
) -> list[DueCheck]:
    """The order's names whose CAA check is older than ``MAX_AGE`` or was never made."""
    if endpoint.type != "public":
        return []
    found: list[DueCheck] = []
    for authz in order.authorizations:
        if authz.identifier.type != "dns":
            continue
        checked = authz.caa_checked_at
        if checked is not None and now - checked < MAX_AGE:
            continue
        found.append(
            DueCheck(
                authz.id,
                authz.identifier.value,
                authz.wildcard,
                _method(authz, conn, account, now),
            )
        )
    return found


async def run(
    caa: CaaContext,
    endpoint: EndpointConfig,
    account: Account,
    checks: Sequence[DueCheck],
    clock: Clock,
) -> list[Outcome]:
    """Each due check, side by side (each bounded by the checker's own deadline)."""

    async def one(check: DueCheck) -> Outcome:
        started = clock.now()
        try:
            await caa.checker_for(account).check(
                check.name,
                wildcard=check.wildcard,
                account_uri=caa.account_uri(account),
                method=check.method,
                issuer_domains=endpoint.caa_identities,
            )
        except AcmeError as exc:
            return Outcome(check, started, exc)
        return Outcome(check, started, None)

    return list(await asyncio.gather(*(one(c) for c in checks)))


class CaaForbids(Exception):
    """A finalize CAA re-check found a forbidding record: the order must end."""

    def __init__(self, error: AcmeError) -> None:
        super().__init__(error.detail)
        self.error = error


def apply_at_finalize(
    conn: Connection,
    endpoint: EndpointConfig,
    account: Account,
    order: Order,
    outcomes: Sequence[Outcome],
    now: datetime,
) -> None:
    """In the finalize transaction: every name still due must have a fresh outcome.

    Allowing outcomes are recorded; a forbidding one raises ``CaaForbids`` (the caller ends
    the order); a failed lookup, or a name the checks before the transaction did not cover
    (the order changed in between), refuses this finalize without a change."""
    still_due = due(conn, endpoint, account, order, now)
    if not still_due:
        return
    by_key = {(o.check.authz_id, o.check.method): o for o in outcomes}
    found: list[Outcome] = []
    for check in still_due:
        outcome = by_key.get((check.authz_id, check.method))
        if outcome is None or now - outcome.started >= MAX_AGE:
            raise AcmeError(
                ProblemType.SERVER_INTERNAL,
                f"the CAA check of {check.name} could not be completed; try again",
                status=503,
                headers={"Retry-After": "1"},
            )
        found.append(outcome)
    forbidding = [o for o in found if o.error is not None and o.error.type is ProblemType.CAA]
    if forbidding:
        errors = [o.error for o in forbidding if o.error is not None]
        if len(errors) == 1:
            raise CaaForbids(errors[0])
        raise CaaForbids(
            AcmeError(
                ProblemType.CAA,
                "; ".join(e.detail for e in errors),
                status=403,
                subproblems=errors,
            )
        )
    failed = [o.error for o in found if o.error is not None]
    if failed:
        if len(failed) == 1:
            raise failed[0]
        raise AcmeError(
            failed[0].type, "; ".join(e.detail for e in failed), subproblems=list(failed)
        )
    for outcome in found:
        order_store.set_caa_checked(conn, outcome.check.authz_id, outcome.started)
