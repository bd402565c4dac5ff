"""JSON objects on the wire (RFC 8555 §7.1), rendered from stored state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from acmefleet.acme.urls import EndpointUrls
from acmefleet.config import CHALLENGE_TYPES
from acmefleet.models import Account, Authorization, Challenge, Order


def timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, as clients parse it."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def account_object(urls: EndpointUrls, account: Account) -> dict[str, Any]:
    return {
        "status": account.status,
        "contact": account.contact,
        "orders": urls.account_orders(account.id),
        "termsOfServiceAgreed": True,
        "externalAccountBinding": {"kid": account.eab_kid},
    }


def challenge_object(urls: EndpointUrls, challenge: Challenge) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": challenge.type,
        "url": urls.challenge(challenge.id),
        "status": challenge.status,
        "token": challenge.token,
    }
    if challenge.validated_at is not None:
        obj["validated"] = timestamp(challenge.validated_at)
    if challenge.error is not None:
        obj["error"] = challenge.error
    return obj


def _listed_challenges(authz: Authorization, status: str) -> tuple[Challenge, ...]:
    """RFC 8555 §7.1.4: a valid authorization lists the challenge that was validated.

    An authorization the server granted without a challenge (a private endpoint's own
    names, or a domain validated in the console) lists none: "challenges" is present and
    empty, as Sectigo's ACME service answers for pre-validated domains, and as certbot,
    lego, win-acme and other clients accept for an authorization that needs no work.
    """
    if status == "valid":
        return tuple(c for c in authz.challenges if c.status == "valid")
    # In the configuration's order (http-01 first), whatever order they were stored in.
    return tuple(sorted(authz.challenges, key=_challenge_rank))


def _challenge_rank(challenge: Challenge) -> int:
    known = challenge.type in CHALLENGE_TYPES
    return CHALLENGE_TYPES.index(challenge.type) if known else len(CHALLENGE_TYPES)


def authorization_object(urls: EndpointUrls, authz: Authorization, now: datetime) -> dict[str, Any]:
    status = authz.status(now)
    obj: dict[str, Any] = {
        "identifier": {"type": authz.identifier.type, "value": authz.identifier.value},
        "status": status,
        "expires": timestamp(authz.expires_at),
        "challenges": [challenge_object(urls, c) for c in _listed_challenges(authz, status)],
    }
    if authz.wildcard:
        obj["wildcard"] = True
    return obj


def order_object(urls: EndpointUrls, order: Order, now: datetime) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "status": order.status(now),
        "expires": timestamp(order.expires_at),
        "identifiers": [i.as_wire() for i in order.identifiers],
        "authorizations": [urls.authorization(a.id) for a in order.authorizations],
        "finalize": urls.finalize(order.id),
        "profile": order.profile,
    }
    if order.not_before is not None:
        obj["notBefore"] = timestamp(order.not_before)
    if order.not_after is not None:
        obj["notAfter"] = timestamp(order.not_after)
    if order.replaces is not None:
        obj["replaces"] = order.replaces
    problem = order.problem(now)
    if problem is not None:
        obj["error"] = problem
    if order.certificate_id is not None and order.finalization == "valid":
        obj["certificate"] = urls.certificate(order.certificate_id)
    return obj
