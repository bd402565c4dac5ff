"""Accounts: creation with a single-use EAB, updates, deactivation, key change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from acmefleet.config import EndpointConfig, RateLimits
from acmefleet.errors import (
    AcmeError,
    KeyInUse,
    ProblemType,
    account_not_valid,
    malformed,
    unauthorized,
)
from acmefleet.jose.eab import EabRequest, parse_eab, verify_eab
from acmefleet.jose.keys import AccountKey, thumbprint
from acmefleet.models import Account, EabCredential
from acmefleet.policy import ratelimits
from acmefleet.policy.contacts import check_contacts
from acmefleet.store import accounts as account_store
from acmefleet.store import audit
from acmefleet.store import eab as eab_store
from acmefleet.store import orgs as org_store
from acmefleet.store.ids import new_id


@dataclass(frozen=True)
class NewAccountResult:
    account: Account
    created: bool


def new_account(
    conn: Connection,
    *,
    endpoint: EndpointConfig,
    key: AccountKey,
    payload: dict[str, Any],
    outer_url: str,
    now: datetime,
    source: str | None,
    limits: RateLimits,
) -> NewAccountResult:
    """RFC 8555 §7.3 with §7.3.4; binding and EAB consumption in the caller's transaction."""
    # An existing key gets its account before anything else is looked at (§7.3.1).
    existing = account_store.find_by_thumbprint(conn, endpoint.name, key.thumbprint)
    if existing is not None:
        if existing.status != "valid":  # §7.3.6: a deactivated account's key is refused
            raise account_not_valid(existing.status)
        return NewAccountResult(existing, created=False)
    if payload.get("onlyReturnExisting") is True:
        raise AcmeError(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no account exists for this key")
    contacts = check_contacts(payload.get("contact"))
    request = parse_eab(payload.get("externalAccountBinding"), outer_url)
    address = f"eab-failures:address:{ratelimits.address_key(source)}"
    per_kid = f"eab-failures:kid:{request.kid}"
    # Guessing at credentials is slowed per address and per key id; a refusal below
    # counts as a failure (in its own transaction: this one rolls back).
    ratelimits.refuse_when_exhausted(
        conn, limits.eab_failures_per_address, address, now, "failed EAB attempts"
    )
    ratelimits.refuse_when_exhausted(
        conn, limits.eab_failures_per_credential, per_kid, now, "failed attempts with this EAB"
    )
    try:
        credential, hmac_key = _bindable_credential(conn, request, endpoint, key, now)
    except AcmeError:
        ratelimits.count_if_refused(conn, limits.eab_failures_per_address, address, now)
        ratelimits.count_if_refused(conn, limits.eab_failures_per_credential, per_kid, now)
        raise
    ratelimits.take(
        conn,
        limits.new_accounts_per_address,
        f"accounts:address:{ratelimits.address_key(source)}",
        now,
        "new accounts from this address",
    )
    org = org_store.get_org(conn, credential.org_id)
    if org is None or org.status != "active":
        raise unauthorized("externalAccountBinding: the credential's organisation is disabled")
    account = Account(
        id=new_id(),
        endpoint=endpoint.name,
        org_id=credential.org_id,
        jwk=key.jwk,
        thumbprint=key.thumbprint,
        status="valid",
        contact=contacts,
        eab_kid=credential.kid,
        created_at=now,
    )
    try:
        account_store.insert_account(conn, account)
    except IntegrityError as exc:  # the same key registered concurrently
        raise unauthorized("an account for this key is being created concurrently") from exc
    if not eab_store.consume(conn, credential.kid, hmac_key, account.id, now):
        raise unauthorized("externalAccountBinding: this credential has already been used")
    audit.record(
        conn,
        at=now,
        actor=f"acme-account:{account.id}",
        action="eab.bind",
        target=credential.kid,
        source=source,
        details={"endpoint": endpoint.name, "org_id": credential.org_id},
    )
    return NewAccountResult(account, created=True)


def _bindable_credential(
    conn: Connection, request: EabRequest, endpoint: EndpointConfig, key: AccountKey, now: datetime
) -> tuple[EabCredential, str]:
    """§7.3.4: the credential exists for this endpoint, is unused, and its MAC verifies;
    the credential and its HMAC key (what binding consumes)."""
    credential = eab_store.get_credential(conn, request.kid)
    if credential is None or credential.endpoint != endpoint.name:
        raise unauthorized("externalAccountBinding: unknown key identifier for this endpoint")
    state = credential.state(now)
    if state != "unused" or credential.hmac_key is None:
        raise unauthorized(f"externalAccountBinding: this credential is {state}")
    verify_eab(request, credential.hmac_key, key.thumbprint)
    return credential, credential.hmac_key


def update_account(
    conn: Connection, account: Account, payload: dict[str, Any], now: datetime
) -> Account:
    """Contact changes and deactivation (§7.3.2, §7.3.6)."""
    changes: dict[str, Any] = {}
    if "contact" in payload:
        changes["contact"] = check_contacts(payload["contact"])
    status = payload.get("status")
    # §7.3.2: fields the client may not change are ignored, so a client that echoes the
    # account object back (python-acme sends "status": "valid") is not refused.
    if status is not None and status != account.status:
        if status != "deactivated":
            raise malformed("an account's status can only be changed to 'deactivated'")
        changes["status"] = "deactivated"
    if not changes:
        return account
    account_store.update_account(conn, account.id, **changes)
    if "status" in changes:
        audit.record(
            conn,
            at=now,
            actor=f"acme-account:{account.id}",
            action="account.deactivate",
            target=account.id,
        )
    updated = account_store.get_account(conn, account.id)
    assert updated is not None
    return updated


def change_key(
    conn: Connection, account: Account, new_key: AccountKey, old_key_jwk: Any
) -> Account:
    """§7.3.5 after ``jose.keychange`` checked the inner JWS: the stored-state steps.

    ``oldKey`` must be the account's current key, and no account of the endpoint may
    hold the new key already (``KeyInUse`` names it; the edge turns it into a URL).
    """
    if not isinstance(old_key_jwk, dict) or thumbprint(old_key_jwk) != account.thumbprint:
        raise unauthorized("keyChange: 'oldKey' is not the account's current key")
    holder = account_store.find_by_thumbprint(conn, account.endpoint, new_key.thumbprint)
    if holder is not None:
        raise KeyInUse(holder.id)
    account_store.update_account(conn, account.id, jwk=new_key.jwk, thumbprint=new_key.thumbprint)
    updated = account_store.get_account(conn, account.id)
    assert updated is not None
    return updated
