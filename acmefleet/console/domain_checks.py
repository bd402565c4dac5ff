"""Domain control checks run by the console, with the server's own validators.

Two methods, each proving what it proves and no more:

* **http-01** (CA/B BR 3.2.2.4.19): the administrator gets a token; the domain's web server
  must serve ``<token>.acmefleet-domain-validation`` at ``/.well-known/acme-challenge/<token>``.
  The check fetches it exactly as an ACME http-01 validation would (same address policy,
  same port). It proves control of that one host: the validation's scope is ``exact``.
* **dns** (CA/B BR 3.2.2.4.7, DNS Change): the administrator gets a Random Value (256 bits
  from the OS's CSPRNG, unpadded base64url: over the BR's 112 bits) and creates a TXT record
  holding it at ``_acmefleet-challenge.<domain>``: the Authorization Domain Name prefixed with
  an underscore label, as the BR allow. Not ``_acme-challenge``: ACME clients add and remove
  their own records there (certbot, lego and RFC 2136 hooks clean up what they find), and
  the console's record must outlive their runs. The check looks it up with the server's own
  dns-01 lookup (``validation.dns_resolvers``, one deadline, CNAMEs followed, the same size
  limits and errors). Control of the zone's DNS proves the domain and every name below it:
  the validation's scope is ``subdomains`` (wildcards included).

A check expires: a token after 7 days, a Random Value after 30 days (the BR's cap on a Random
Value's use). A completed check holds for the BR's domain validation reuse period in force
(4.2.1: 200 days since 2026-03-15, 100 from 2027-03-15, 10 from 2029-03-15), and counts only
within the period in force at each issuance (``OrgDomain.is_validated``). An expired check
cannot complete; the administrator starts a new one, with a new value. A failed check leaves
the domain as it was (the attempt is audited) so that the record can be fixed and checked
again within the expiry.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from acmefleet.baseline import dcv_reuse_period
from acmefleet.clock import Clock
from acmefleet.console import organisations
from acmefleet.console.errors import ConsoleError
from acmefleet.errors import AcmeError
from acmefleet.identifiers import Identifier
from acmefleet.jose.b64 import b64url_encode
from acmefleet.models import OrgDomain, ValidationScope
from acmefleet.store import audit
from acmefleet.store import orgs as org_store
from acmefleet.store.engine import Database
from acmefleet.validation.base import ChallengeValidator, TxtRecordChecker

CheckMethod = Literal["http-01", "dns"]
CHECK_METHODS: tuple[CheckMethod, ...] = ("http-01", "dns")
HTTP01: CheckMethod = "http-01"
DNS: CheckMethod = "dns"

MARKER = "acmefleet-domain-validation"
DNS_LABEL = "_acmefleet-challenge"
# 32 bytes = 256 bits of entropy (BR 1.6.1: a Random Value has at least 112).
RANDOM_VALUE_BYTES = 32
LIFETIMES: dict[CheckMethod, timedelta] = {
    HTTP01: timedelta(days=7),
    # BR 3.2.2.4.7: a Random Value is not used after 30 days.
    DNS: timedelta(days=30),
}
# What each method's validation covers on public endpoints (see acmefleet.policy.names).
SCOPES: dict[CheckMethod, ValidationScope] = {HTTP01: "exact", DNS: "subdomains"}
# Kept for callers of the http-01 check's lifetime.
CHECK_LIFETIME = LIFETIMES[HTTP01]


@dataclass(frozen=True)
class PendingCheck:
    domain: str
    method: CheckMethod
    token: str
    expires: datetime
    # http-01: where the content must be served, and what it is.
    url: str | None = None
    expected_content: str | None = None
    # dns: the TXT record to create (its name; its value is ``token``, the Random Value).
    record_name: str | None = None


def expected_content(token: str) -> str:
    return f"{token}.{MARKER}"


def dns_record_name(domain: str) -> str:
    return f"{DNS_LABEL}.{domain}"


def parse_method(raw: str) -> CheckMethod:
    for method in CHECK_METHODS:
        if raw == method:
            return method
    raise ConsoleError(f"a domain check's method is one of {', '.join(CHECK_METHODS)}, not {raw!r}")


def method_of(domain: OrgDomain) -> CheckMethod:
    """The method of the domain's check in progress (a check stored without one: http-01)."""
    return DNS if domain.challenge_method == DNS else HTTP01


def pending(domain: OrgDomain, now: datetime, *, http01_port: int) -> PendingCheck | None:
    """The domain's check in progress, or None (none started, or it expired)."""
    token, started = domain.challenge_token, domain.challenge_started_at
    if token is None or started is None:
        return None
    method = method_of(domain)
    expires = started + LIFETIMES[method]
    if expires <= now:
        return None
    if method == DNS:
        return PendingCheck(
            domain.name, DNS, token, expires, record_name=dns_record_name(domain.name)
        )
    port = "" if http01_port == 80 else f":{http01_port}"
    return PendingCheck(
        domain.name,
        HTTP01,
        token,
        expires,
        url=f"http://{domain.name}{port}/.well-known/acme-challenge/{token}",
        expected_content=expected_content(token),
    )


def start(
    db: Database,
    clock: Clock,
    domain_id: int,
    *,
    method: CheckMethod = HTTP01,
    http01_port: int,
    actor: str,
    source: str | None = None,
) -> PendingCheck:
    """Start a check of ``method`` (replacing any check in progress) with a fresh value."""
    now = clock.now()
    token = b64url_encode(secrets.token_bytes(RANDOM_VALUE_BYTES if method == DNS else 24))
    with db.write() as conn:
        domain = organisations.get_domain(conn, domain_id)
        if domain.kind != "dns":
            raise ConsoleError(f"IP networks are not validated by {method}")
        org_store.set_challenge(conn, domain.id, token, now, method)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="domain.validation.start",
            target=domain.name,
            source=source,
            details={"method": method, "expires": (now + LIFETIMES[method]).isoformat()},
        )
        started = organisations.get_domain(conn, domain.id)
    found = pending(started, now, http01_port=http01_port)
    assert found is not None
    return found


def _dns_checker(validators: Mapping[str, ChallengeValidator]) -> TxtRecordChecker:
    """The server's dns-01 validator: the console looks its TXT record up the same way."""
    checker = validators.get("dns-01")
    if not isinstance(checker, TxtRecordChecker):
        raise ConsoleError("dns validation is not configured on this server")
    return checker


def _http01_validator(validators: Mapping[str, ChallengeValidator]) -> ChallengeValidator:
    validator = validators.get("http-01")
    if validator is None:
        raise ConsoleError("http-01 validation is not configured on this server")
    return validator


async def check(
    db: Database,
    clock: Clock,
    validators: Mapping[str, ChallengeValidator],
    domain_id: int,
    *,
    actor: str,
    source: str | None = None,
    lifetime: timedelta | None = None,
) -> None:
    """Run the check in progress; on success the domain is validated, with the scope its
    method proves, for ``lifetime`` capped at the BR reuse period in force (4.2.1: 200 days
    from 2026-03-15, 100 from 2027-03-15, 10 from 2029-03-15; the whole period when no
    lifetime is given). On failure nothing but the audit log changes."""
    with db.read() as conn:
        domain = organisations.get_domain(conn, domain_id)
    now = clock.now()
    token, started = domain.challenge_token, domain.challenge_started_at
    if token is None or started is None:
        raise ConsoleError(f"no check in progress for {domain.name}: start one first")
    method = method_of(domain)
    expires = started + LIFETIMES[method]
    if expires <= now:
        what = "Random Value" if method == DNS else "http-01 token"
        raise ConsoleError(
            f"the {what} for {domain.name} expired on {expires:%Y-%m-%d %H:%M} UTC "
            f"({LIFETIMES[method].days} days after it was issued): start a new {method} check"
        )
    try:
        if method == DNS:
            await _dns_checker(validators).expect_txt(dns_record_name(domain.name), token)
        else:
            await _http01_validator(validators).validate(
                Identifier("dns", domain.name), token, expected_content(token)
            )
    except AcmeError as exc:
        with db.write() as conn:
            audit.record(
                conn,
                at=clock.now(),
                actor=actor,
                action="domain.validation.fail",
                target=domain.name,
                source=source,
                details={"method": method, "problem": exc.type.value},
            )
        raise ConsoleError(f"{method} validation of {domain.name} failed: {exc.detail}") from exc
    done = clock.now()
    reuse = dcv_reuse_period(done)
    holds = reuse if lifetime is None else min(lifetime, reuse)
    with db.write() as conn:
        current = organisations.get_domain(conn, domain.id)
        if (current.challenge_token, current.challenge_method) != (token, domain.challenge_method):
            # Restarted (a new value) while this one was looked up: the proof is of a value
            # no longer in force.
            raise ConsoleError(f"the check of {domain.name} was restarted meanwhile: check again")
        # http-01 proves this one FQDN: never its subdomains, never a wildcard (BR
        # 3.2.2.4.18/19, ballot SC45). A DNS change proves the zone's control from the
        # Authorization Domain Name down (BR 3.2.2.4.7, wildcards per 3.2.2.6).
        organisations.record_validation(
            conn,
            domain,
            method=method,
            scope=SCOPES[method],
            actor=actor,
            now=done,
            lifetime=holds,
            source=source,
        )
