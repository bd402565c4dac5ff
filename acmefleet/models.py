"""Stored state as the server reasons about it (wire formats live in ``acme.wire``).

Statuses that depend on time or on other objects are derived here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

# The BR 4.2.1 reuse schedule lives in ``baseline`` (the configuration is bounded by it too).
from acmefleet.baseline import dcv_reuse_period
from acmefleet.identifiers import Identifier

AccountStatus = Literal["valid", "deactivated", "revoked"]
AuthzStatus = Literal["pending", "valid", "invalid", "deactivated", "expired", "revoked"]
ChallengeStatus = Literal["pending", "processing", "valid", "invalid"]
OrderStatus = Literal["pending", "ready", "processing", "valid", "invalid"]
Finalization = Literal["none", "processing", "valid", "invalid"]
# What a console validation of a domain proves (CA/B BR 3.2.2.4): ``exact`` that one name only
# (http-01: control of one host, never a wildcard nor the names below it); ``subdomains`` the
# name, every name below it and wildcards under it (a DNS change; or an administrator's word).
ValidationScope = Literal["exact", "subdomains"]
VALIDATION_SCOPES: tuple[ValidationScope, ...] = ("exact", "subdomains")

# Console validations that are BR 3.2.2.4 methods (the checks the server ran), as opposed to
# an administrator's manual attestation, which lasts what the administrator gave it.
BR_CHECK_METHODS = frozenset({"dns", "http-01"})


@dataclass(frozen=True)
class Organization:
    id: int
    name: str
    status: Literal["active", "disabled"]
    created_at: datetime


@dataclass(frozen=True)
class OrgDomain:
    id: int
    org_id: int
    name: str
    kind: Literal["dns", "ip"]
    validated_at: datetime | None
    validated_until: datetime | None
    validation_method: str | None
    validated_by: str | None
    challenge_token: str | None = None
    challenge_started_at: datetime | None = None
    validation_scope: ValidationScope | None = None
    # The method of the check in progress ("http-01" or "dns"); None with a token: a check
    # started before the DNS method existed, which was http-01.
    challenge_method: str | None = None

    def is_validated(self, now: datetime) -> bool:
        """Validated at ``now``: before ``validated_until`` and, for a check the server ran
        (dns, http-01), within the BR reuse period in force at ``now`` (it shrinks over the
        years, so a validation stored with a longer one stops counting when it does)."""
        if self.validated_until is None or self.validated_until <= now:
            return False
        if self.validation_method in BR_CHECK_METHODS and self.validated_at is not None:
            return self.validated_at + dcv_reuse_period(now) > now
        return True


@dataclass(frozen=True)
class EabCredential:
    kid: str
    org_id: int
    endpoint: str
    hmac_key: str | None
    created_at: datetime
    expires_at: datetime
    bound_at: datetime | None
    account_id: str | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> Literal["unused", "bound", "expired", "revoked"]:
        if self.bound_at is not None:
            return "bound"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "unused"


@dataclass(frozen=True)
class Account:
    id: str
    endpoint: str
    org_id: int
    jwk: dict[str, Any]
    thumbprint: str
    status: AccountStatus
    contact: list[str]
    eab_kid: str
    created_at: datetime


@dataclass(frozen=True)
class Challenge:
    id: str
    authz_id: str
    type: str
    token: str
    status: ChallengeStatus
    validated_at: datetime | None
    error: dict[str, Any] | None
    # When validation was asked for (status processing): a restart resumes it only until the
    # validator's deadline has passed since then.
    processing_since: datetime | None = None


@dataclass(frozen=True)
class Authorization:
    id: str
    account_id: str
    identifier: Identifier
    wildcard: bool
    stored_status: AuthzStatus
    expires_at: datetime
    challenges: tuple[Challenge, ...]
    # When CAA last allowed issuance for this name (public endpoints); None: never.
    caa_checked_at: datetime | None = None

    def status(self, now: datetime) -> AuthzStatus:
        if self.stored_status in ("pending", "valid") and self.expires_at <= now:
            return "expired"
        return self.stored_status


@dataclass(frozen=True)
class Order:
    id: str
    account_id: str
    profile: str
    identifiers: tuple[Identifier, ...]
    expires_at: datetime
    not_before: datetime | None
    not_after: datetime | None
    finalization: Finalization
    error: dict[str, Any] | None
    certificate_id: str | None
    authorizations: tuple[Authorization, ...]
    # RFC 9773 §5: the certID this order replaces, as the client sent it, and the id of
    # that certificate here.
    replaces: str | None = None
    replaces_certificate: str | None = None

    def status(self, now: datetime) -> OrderStatus:
        """RFC 8555 §7.1.6, derived from finalization, expiry and the authorizations."""
        if self.finalization in ("valid", "invalid", "processing"):
            return self.finalization
        if self.expires_at <= now:
            return "invalid"
        states = [authz.status(now) for authz in self.authorizations]
        if any(s in ("invalid", "deactivated", "expired", "revoked") for s in states):
            return "invalid"
        if all(s == "valid" for s in states):
            return "ready"
        return "pending"

    def problem(self, now: datetime) -> dict[str, Any] | None:
        """Why an invalid order is invalid (the first failed authorization's error)."""
        if self.error is not None:
            return self.error
        if self.status(now) != "invalid":
            return None
        for authz in self.authorizations:
            for challenge in authz.challenges:
                if challenge.error is not None:
                    return challenge.error
        return None


@dataclass(frozen=True)
class Certificate:
    id: str
    serial_hex: str
    account_id: str
    order_id: str
    org_id: int
    endpoint: str
    ca_level: str
    profile: str
    names: list[str]
    not_before: datetime
    not_after: datetime
    chain_pem: str
    spki_sha256: str
    revoked_at: datetime | None
    revocation_reason: int | None


RelayState = Literal["queued", "valid", "invalid"]


@dataclass(frozen=True)
class RelayedOrder:
    """A local order finalize handed to the endpoint's upstream CA (``store.upstream_orders``)."""

    order_id: str
    upstream: str
    csr: str  # base64url DER
    state: RelayState
    upstream_order_url: str | None
    certificate_url: str | None
    attempts: int
    next_attempt_at: datetime
    give_up_at: datetime
    last_error: dict[str, Any] | None
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
