"""Orders: identifier policy per endpoint type, authorizations, and finalization."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from acmefleet.ca.csr import check_csr
from acmefleet.ca.errors import CaError, CsrError
from acmefleet.ca.issuer import Issuer, IssueRequest
from acmefleet.ca.profiles import LeafProfile
from acmefleet.config import EndpointConfig, RateLimits
from acmefleet.errors import AcmeError, ProblemType, malformed, unauthorized
from acmefleet.identifiers import Identifier, IdentifierSyntaxError, parse_identifier
from acmefleet.jose.b64 import b64url_decode, b64url_encode
from acmefleet.models import (
    Account,
    Authorization,
    AuthzStatus,
    Certificate,
    Challenge,
    Order,
    OrgDomain,
)
from acmefleet.policy import caa as caa_policy
from acmefleet.policy import ratelimits
from acmefleet.policy import relay as relay_policy
from acmefleet.policy import replaces as replaces_policy
from acmefleet.policy.names import covering_domain, validated_domain
from acmefleet.policy.reuse import Reuse, reusable_authorization
from acmefleet.store import audit
from acmefleet.store import certificates as cert_store
from acmefleet.store import delegations as delegation_store
from acmefleet.store import orders as order_store
from acmefleet.store import orgs as org_store
from acmefleet.store.ids import new_id

MAX_IDENTIFIERS = 100
DNS01 = "dns-01"


@dataclass(frozen=True)
class Lifetimes:
    order: timedelta
    authorization: timedelta


def parse_identifiers(raw: Any) -> list[Identifier]:
    if not isinstance(raw, list) or not raw:
        raise malformed("'identifiers' must be a non-empty array")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeError(ProblemType.REJECTED_IDENTIFIER, f"at most {MAX_IDENTIFIERS} identifiers")
    found: list[Identifier] = []
    problems: list[AcmeError] = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("type"), str)
            or not isinstance(item.get("value"), str)
        ):
            raise malformed("each identifier must be an object with string 'type' and 'value'")
        if item["type"] not in ("dns", "ip"):
            raise AcmeError(
                ProblemType.UNSUPPORTED_IDENTIFIER,
                f"identifier type {item['type']!r} is not supported",
            )
        try:
            identifier = parse_identifier(item["type"], item["value"])
        except IdentifierSyntaxError as exc:
            problems.append(AcmeError(ProblemType.REJECTED_IDENTIFIER, str(exc), identifier=item))
            continue
        if identifier not in found:
            found.append(identifier)
    _raise_rejected(problems)
    return sorted(found)


def _raise_rejected(problems: list[AcmeError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise AcmeError(
            ProblemType.REJECTED_IDENTIFIER,
            "; ".join(p.detail for p in problems),
            subproblems=problems,
        )


def _parse_time(raw: Any, what: str) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise malformed(f"'{what}' must be an RFC 3339 timestamp")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise malformed(f"'{what}' must be an RFC 3339 timestamp") from exc
    if value.tzinfo is None:
        raise malformed(f"'{what}' must carry a time zone")
    try:
        return value.astimezone(UTC)  # "0001-01-01T00:00:00+14:00" is before year 1 in UTC
    except OverflowError as exc:
        raise malformed(f"'{what}' is out of range") from exc


@dataclass(frozen=True)
class Authority:
    """The organisation's domains an account may order under, read for one decision."""

    domains: list[OrgDomain]
    # Delegated: only ``domains`` (already narrowed to the delegated ones), even when none
    # is left: a restriction fails closed, never back open to the whole organisation.
    restricted: bool


def account_authority(conn: Connection, account: Account) -> Authority:
    """What ``account`` may order under now, or ``unauthorized`` if its organisation is off."""
    org = org_store.get_org(conn, account.org_id)
    if org is None or org.status != "active":
        raise unauthorized("the account's organisation is disabled")
    domains = org_store.list_domains(conn, account.org_id)
    if not delegation_store.is_restricted(conn, account.id, account.eab_kid):
        return Authority(domains, restricted=False)
    delegated = delegation_store.domain_ids_for(conn, account.id, account.eab_kid)
    return Authority([d for d in domains if d.id in delegated], restricted=True)


def _identifier_policy(
    endpoint: EndpointConfig, identifier: Identifier, authority: Authority, now: datetime
) -> tuple[bool, OrgDomain | None]:
    """(needs a challenge, the validated domain that spares it) or rejectedIdentifier."""
    wire = identifier.as_wire()
    domains = authority.domains
    if authority.restricted and covering_domain(domains, identifier) is None:
        raise AcmeError(
            ProblemType.REJECTED_IDENTIFIER,
            f"{identifier.value} is not under a domain delegated to this account"
            if domains
            else f"{identifier.value}: no domain is delegated to this account",
            identifier=wire,
        )
    if endpoint.type == "private":
        if covering_domain(domains, identifier) is None:
            raise AcmeError(
                ProblemType.REJECTED_IDENTIFIER,
                f"{identifier.value} does not belong to the account's organisation",
                identifier=wire,
            )
        return False, None
    if identifier.type == "ip":
        raise AcmeError(
            ProblemType.REJECTED_IDENTIFIER,
            f"{identifier.value}: IP identifiers are issued only on private endpoints",
            identifier=wire,
        )
    validated = validated_domain(domains, identifier, now)
    if validated is not None:
        return False, validated
    if not offered_challenges(endpoint, identifier):
        raise AcmeError(
            ProblemType.REJECTED_IDENTIFIER,
            f"{identifier.value}: a wildcard on this endpoint needs dns-01, which it does not "
            "offer, or its domain validated in the console by DNS (scope 'subdomains')"
            if identifier.is_wildcard
            else f"{identifier.value}: this endpoint offers no challenge; its domain must be "
            "validated in the console",
            identifier=wire,
        )
    return True, None


def offered_challenges(endpoint: EndpointConfig, identifier: Identifier) -> tuple[str, ...]:
    """The challenge types an authorization for ``identifier`` gets, in the endpoint's order.

    A wildcard is proven only through dns-01 (RFC 8555 §7.1.3, RFC 8737 §3; CA/B BR 3.2.2.4:
    control of a web server or TLS port proves one host, never the names below it)."""
    if identifier.is_wildcard:
        return tuple(c for c in endpoint.challenges if c == DNS01)
    if identifier.type == "ip":  # RFC 8738 §7: no dns-01 for an IP address
        return tuple(c for c in endpoint.challenges if c != DNS01)
    return endpoint.challenges


def recheck_authority(
    conn: Connection, endpoint: EndpointConfig, account: Account, order: Order, now: datetime
) -> None:
    """At finalize, the authority an order was created under must still hold.

    Between newOrder and finalize an administrator may have removed a domain from the
    organisation, revoked its console validation, or removed a delegation: the order was
    ``ready`` under the old state, but nothing may be issued under the new one. A name whose
    authorization a challenge satisfied stays good; one that the console spared (no
    challenge) needs its validation still in force.
    """
    authority = account_authority(conn, account)
    problems: list[AcmeError] = []
    for identifier in order.identifiers:
        try:
            needs_challenge, _ = _identifier_policy(endpoint, identifier, authority, now)
            if needs_challenge and not _proven_by_challenge(order, identifier):
                raise AcmeError(
                    ProblemType.REJECTED_IDENTIFIER,
                    f"{identifier.value}: its domain is no longer validated in the console",
                    identifier=identifier.as_wire(),
                )
        except AcmeError as exc:
            problems.append(exc)
    if problems:
        detail = "; ".join(p.detail for p in problems)
        raise AcmeError(
            ProblemType.UNAUTHORIZED,
            f"the order's authority changed since it was created: {detail}",
            status=403,
            subproblems=problems,
        )


def _proven_by_challenge(order: Order, identifier: Identifier) -> bool:
    for authz in order.authorizations:
        if (authz.identifier.value, authz.wildcard) == (
            identifier.base_name,
            identifier.is_wildcard,
        ):
            return any(c.status == "valid" for c in authz.challenges)
    return False


def _new_authorization(
    account: Account,
    identifier: Identifier,
    *,
    challenge_types: tuple[str, ...],
    expires_at: datetime,
) -> Authorization:
    """``challenge_types`` empty: granted without a challenge (valid at once)."""
    authz_id = new_id()
    base = Identifier(identifier.type, identifier.base_name)
    needs_challenge = bool(challenge_types)
    # One token per challenge (RFC 8555 §8: each challenge carries its own).
    challenges = tuple(
        Challenge(
            id=new_id(),
            authz_id=authz_id,
            type=kind,
            token=b64url_encode(secrets.token_bytes(32)),
            status="pending",
            validated_at=None,
            error=None,
        )
        for kind in challenge_types
    )
    status: AuthzStatus = "pending" if needs_challenge else "valid"
    return Authorization(
        id=authz_id,
        account_id=account.id,
        identifier=base,
        wildcard=identifier.is_wildcard,
        stored_status=status,
        expires_at=expires_at,
        challenges=challenges,
    )


def new_order(
    conn: Connection,
    *,
    endpoint: EndpointConfig,
    account: Account,
    payload: dict[str, Any],
    lifetimes: Lifetimes,
    profiles: dict[str, LeafProfile],
    now: datetime,
    limits: RateLimits,
    reuse: Reuse | None = None,
) -> Order:
    """RFC 8555 §7.4: check the identifiers against the endpoint's policy, then store.

    A name that needs a challenge gets, in this order: a valid authorization proven within
    ``reuse`` (the account's own, or a copy of one of its organisation's); the account's
    pending one for it; a new pending one (``policy.reuse``)."""
    reuse = reuse or Reuse()
    identifiers = parse_identifiers(payload.get("identifiers"))
    profile_name = payload.get("profile", endpoint.default_profile)
    if not isinstance(profile_name, str):
        raise malformed("'profile' must be a string")
    if profile_name not in endpoint.profiles:
        raise AcmeError(
            ProblemType.INVALID_PROFILE,
            f"profile {profile_name!r} is not offered here; "
            f"choose one of {list(endpoint.profiles)}",
        )
    profile = profiles[profile_name]
    not_before = _parse_time(payload.get("notBefore"), "notBefore")
    not_after = _parse_time(payload.get("notAfter"), "notAfter")
    start = not_before or now
    if not_after is not None and (not_after <= start or not_after - start > profile.max_validity):
        raise malformed(
            f"notAfter must lie after notBefore and within {profile.max_validity.days} days"
        )
    authority = account_authority(conn, account)
    replacing = replaces_policy.check_replaces(
        conn, endpoint.name, account, payload.get("replaces"), identifiers
    )
    ratelimits.take(
        conn, limits.new_orders_per_account, f"orders:account:{account.id}", now, "new orders"
    )
    ratelimits.take(
        conn,
        limits.new_orders_per_organisation,
        f"orders:org:{account.org_id}",
        now,
        "new orders for this organisation",
    )
    authz_expiry = now + lifetimes.authorization
    authorizations: list[Authorization] = []
    reused: set[str] = set()
    # An order that reuses validations ends when the oldest of them may no longer be used.
    reuse_ends: list[datetime] = []
    problems: list[AcmeError] = []
    for identifier in identifiers:
        try:
            needs_challenge, validated = _identifier_policy(endpoint, identifier, authority, now)
        except AcmeError as exc:
            problems.append(exc)
            continue
        if needs_challenge:
            found = reusable_authorization(
                conn,
                endpoint.name,
                account,
                identifier,
                offered_challenges(endpoint, identifier),
                reuse,
                now,
                authz_expiry,
            )
            if found is not None:
                authorizations.append(found.authorization)
                if found.stored:  # (a copy of another account's is stored with the order)
                    reused.add(found.authorization.id)
                if found.usable_until is not None:
                    reuse_ends.append(found.usable_until)
                continue
        expiry = authz_expiry
        if validated is not None and validated.validated_until is not None:
            expiry = min(expiry, validated.validated_until)
        authz = _new_authorization(
            account,
            identifier,
            challenge_types=offered_challenges(endpoint, identifier) if needs_challenge else (),
            expires_at=expiry,
        )
        authorizations.append(authz)
    _raise_rejected(problems)
    created = [a for a in authorizations if a.id not in reused]
    ratelimits.check_pending_authorizations(
        conn,
        limits.pending_authorizations_per_account,
        account.id,
        sum(1 for a in created if a.stored_status == "pending"),
        now,
    )
    for authz in created:
        order_store.insert_authorization(conn, authz, now)
    order = Order(
        id=new_id(),
        account_id=account.id,
        profile=profile_name,
        identifiers=tuple(identifiers),
        expires_at=min(
            [now + lifetimes.order, *(a.expires_at for a in authorizations), *reuse_ends]
        ),
        not_before=not_before,
        not_after=not_after,
        finalization="none",
        error=None,
        certificate_id=None,
        authorizations=tuple(authorizations),
        replaces=replacing.cert_id if replacing else None,
        replaces_certificate=replacing.certificate_id if replacing else None,
    )
    order_store.insert_order(conn, order, now)
    return order


def finalize_order(
    conn: Connection,
    *,
    endpoint: EndpointConfig,
    account: Account,
    account_spki: bytes,
    order: Order,
    payload: dict[str, Any],
    issuer: Issuer,
    profiles: dict[str, LeafProfile],
    now: datetime,
    source: str | None = None,
    caa_outcomes: Sequence[caa_policy.Outcome] = (),
    check_caa: bool = True,
    relay: relay_policy.RelayTo | None = None,
) -> Order:
    """RFC 8555 §7.4: a ready order, a CSR for exactly its names, then issue at once.

    On a public endpoint, ``caa_outcomes`` are the CAA checks made before this transaction
    for the names ``caa_policy.due`` listed; a forbidding one ends the order: it is returned
    ``invalid`` with the ``caa`` problem (committed: the order is over).

    With ``relay`` (an endpoint whose certificates come from an upstream CA), the claimed
    order is queued for the upstream instead of signed here, and returned ``processing``."""
    status = order.status(now)
    if status != "ready":
        raise AcmeError(
            ProblemType.ORDER_NOT_READY, f"the order is {status}, not ready", status=403
        )
    raw_csr = payload.get("csr")
    if not isinstance(raw_csr, str):
        raise malformed("'csr' must be the base64url DER of a CSR")
    try:
        der = b64url_decode(raw_csr)
    except ValueError as exc:
        raise AcmeError(ProblemType.BAD_CSR, "'csr' is not base64url") from exc
    try:
        checked = check_csr(der, order.identifiers, forbidden_key_spki=account_spki)
    except CsrError as exc:
        raise AcmeError(ProblemType.BAD_CSR, str(exc)) from exc
    recheck_authority(conn, endpoint, account, order, now)
    try:
        if check_caa:
            caa_policy.apply_at_finalize(conn, endpoint, account, order, caa_outcomes, now)
    except caa_policy.CaaForbids as forbids:
        problem = forbids.error.as_problem()
        if not order_store.set_finalization(
            conn, order.id, expected="none", finalization="invalid", error=problem
        ):
            raise AcmeError(
                ProblemType.ORDER_NOT_READY, "the order is already being finalized", status=403
            ) from None
        audit.record(
            conn,
            at=now,
            actor=f"acme-account:{account.id}",
            action="order.caa-refused",
            target=order.id,
            source=source,
            details={"endpoint": endpoint.name, "detail": forbids.error.detail},
        )
        return replace(order, finalization="invalid", error=problem)
    # Claim the order before signing (ready → processing, conditionally): of two finalize
    # requests racing on a database that lets both read "ready" (PostgreSQL's READ
    # COMMITTED), the second waits on this row and then finds it claimed, so it never signs
    # a certificate that would be thrown away unrecorded.
    if not order_store.set_finalization(conn, order.id, expected="none", finalization="processing"):
        raise AcmeError(
            ProblemType.ORDER_NOT_READY, "the order is already being finalized", status=403
        )
    if order.replaces_certificate is not None:
        # After the claim on the order: a refusal here rolls both back, and an order CAA
        # ended never marks the certificate it named.
        replaces_policy.claim_replacement(conn, order.replaces_certificate, order_id=order.id)
    if relay is not None:
        relay_policy.queue(conn, order, raw_csr, relay, now)
        audit.record(
            conn,
            at=now,
            actor=f"acme-account:{account.id}",
            action="order.relay-queued",
            target=order.id,
            source=source,
            details={"endpoint": endpoint.name, "upstream": relay.upstream},
        )
        return replace(order, finalization="processing")
    profile = profiles[order.profile]
    try:
        issued = issuer.issue(
            IssueRequest(
                public_key=checked.public_key,
                dns_names=checked.dns_names,
                ip_addresses=checked.ip_addresses,
                profile=profile,
                not_before=order.not_before,
                not_after=order.not_after,
            )
        )
    except CaError as exc:
        raise AcmeError(ProblemType.BAD_CSR, f"cannot issue: {exc}") from exc
    certificate = Certificate(
        id=new_id(),
        serial_hex=issued.serial_hex,
        account_id=account.id,
        order_id=order.id,
        org_id=account.org_id,
        endpoint=endpoint.name,
        ca_level=endpoint.ca,
        profile=profile.name,
        names=[i.value for i in order.identifiers],
        not_before=issued.not_before,
        not_after=issued.not_after,
        chain_pem=issued.chain_pem.decode("ascii"),
        spki_sha256=issued.spki_sha256_hex,
        revoked_at=None,
        revocation_reason=None,
    )
    cert_store.insert_certificate(conn, certificate, now)
    audit.record(
        conn,
        at=now,
        actor=f"acme-account:{account.id}",
        action="certificate.issue",
        target=certificate.serial_hex,
        source=source,
        details={"names": certificate.names, "order": order.id, "endpoint": endpoint.name},
    )
    claimed = order_store.set_finalization(
        conn, order.id, expected="processing", finalization="valid", certificate_id=certificate.id
    )
    if not claimed:  # only this transaction can have moved it from processing
        raise RuntimeError(f"order {order.id} changed while this transaction held its claim")
    return replace(order, finalization="valid", certificate_id=certificate.id)


def spki_sha256_hex(spki_der: bytes) -> str:
    return hashlib.sha256(spki_der).hexdigest()
