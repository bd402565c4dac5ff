"""Domain control checks run by the console, with the server's own http-01 validator.

The administrator starts a check and gets a token; the domain's web server must then serve
``<token>.acmefleet-domain-validation`` at ``/.well-known/acme-challenge/<token>``. The check
fetches it exactly as an ACME http-01 validation would (same address policy, same port).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from acmefleet.clock import Clock
from acmefleet.console import organisations
from acmefleet.console.errors import ConsoleError
from acmefleet.errors import AcmeError
from acmefleet.identifiers import Identifier
from acmefleet.jose.b64 import b64url_encode
from acmefleet.store import audit
from acmefleet.store import orgs as org_store
from acmefleet.store.engine import Database
from acmefleet.validation.base import ChallengeValidator

CHECK_LIFETIME = timedelta(days=7)
MARKER = "acmefleet-domain-validation"


@dataclass(frozen=True)
class PendingCheck:
    domain: str
    token: str
    url: str
    expected_content: str


def expected_content(token: str) -> str:
    return f"{token}.{MARKER}"


def start(
    db: Database,
    clock: Clock,
    domain_id: int,
    *,
    http01_port: int,
    actor: str,
    source: str | None = None,
) -> PendingCheck:
    now = clock.now()
    token = b64url_encode(secrets.token_bytes(24))
    with db.write() as conn:
        domain = organisations.get_domain(conn, domain_id)
        if domain.kind != "dns":
            raise ConsoleError("IP networks are not validated by http-01")
        org_store.set_challenge(conn, domain.id, token, now)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="domain.validation.start",
            target=domain.name,
            source=source,
            details={"method": "http-01"},
        )
    port = "" if http01_port == 80 else f":{http01_port}"
    return PendingCheck(
        domain.name,
        token,
        f"http://{domain.name}{port}/.well-known/acme-challenge/{token}",
        expected_content(token),
    )


async def check(
    db: Database,
    clock: Clock,
    validator: ChallengeValidator,
    domain_id: int,
    *,
    actor: str,
    source: str | None = None,
    lifetime: timedelta = organisations.DEFAULT_VALIDATION_LIFETIME,
) -> None:
    """Fetch the token; on success the domain is validated until now + lifetime."""
    with db.read() as conn:
        domain = organisations.get_domain(conn, domain_id)
    token, started = domain.challenge_token, domain.challenge_started_at
    if token is None or started is None or started + CHECK_LIFETIME <= clock.now():
        raise ConsoleError("no validation in progress for this domain: start one first")
    try:
        await validator.validate(Identifier("dns", domain.name), token, expected_content(token))
    except AcmeError as exc:
        with db.write() as conn:
            audit.record(
                conn,
                at=clock.now(),
                actor=actor,
                action="domain.validation.fail",
                target=domain.name,
                source=source,
                details={"problem": exc.type.value},
            )
        raise ConsoleError(f"validation of {domain.name} failed: {exc.detail}") from exc
    now = clock.now()
    with db.write() as conn:
        # An http-01 check proves control of this one FQDN: never its subdomains, never a
        # wildcard (CA/B BR 3.2.2.4.18/19, ballot SC45).
        organisations.record_validation(
            conn,
            domain,
            method="http-01",
            scope="exact",
            actor=actor,
            now=now,
            lifetime=lifetime,
            source=source,
        )
