"""The console's JSON shapes, shared by the REST API, the CLI and the web page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from acmefleet.config import ServerConfig
from acmefleet.console import domain_checks
from acmefleet.console.credentials import MintedCredential
from acmefleet.console.domain_checks import PendingCheck
from acmefleet.console.renewals import CertificateRenewal, PulledForward
from acmefleet.models import Account, Certificate, EabCredential, Organization, OrgDomain
from acmefleet.store.audit import ChainReport
from acmefleet.store.delegations import Delegation
from acmefleet.store.tokens import TokenRecord


def _time(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def organisation(org: Organization) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "status": org.status, "created": _time(org.created_at)}


def domain(item: OrgDomain, now: datetime) -> dict[str, Any]:
    return {
        "id": item.id,
        "org_id": item.org_id,
        "name": item.name,
        "kind": item.kind,
        "validated": item.is_validated(now),
        "validated_at": _time(item.validated_at),
        "validated_until": _time(item.validated_until),
        "validation_method": item.validation_method,
        # On public endpoints: "exact" spares only this name its challenge, "subdomains" also
        # the names below it and wildcards under it (null: not validated).
        "validation_scope": item.validation_scope,
        "validated_by": item.validated_by,
        "validation_in_progress": item.challenge_token is not None,
        # The check in progress: its method ("http-01" or "dns") and when its token or
        # Random Value stops being accepted (null: none in progress).
        "check_method": domain_checks.method_of(item) if item.challenge_token else None,
        "check_expires": _time(_check_expiry(item)),
    }


def _check_expiry(item: OrgDomain) -> datetime | None:
    if item.challenge_token is None or item.challenge_started_at is None:
        return None
    return item.challenge_started_at + domain_checks.LIFETIMES[domain_checks.method_of(item)]


def delegation(item: Delegation) -> dict[str, Any]:
    return {
        "id": item.id,
        "domain_id": item.domain_id,
        "account_id": item.account_id,
        "eab_kid": item.eab_kid,
        "created": _time(item.created_at),
    }


def endpoint(config: ServerConfig, name: str, descriptions: dict[str, str]) -> dict[str, Any]:
    item = config.endpoints[name]
    return {
        "name": item.name,
        "type": item.type,
        "ca": item.ca,
        "profiles": {p: descriptions.get(p, "") for p in item.profiles},
        "default_profile": item.default_profile,
        "directory": config.directory_url(item.name),
    }


def credential(item: EabCredential, now: datetime, org_name: str | None) -> dict[str, Any]:
    """An EAB credential, never with its HMAC key."""
    return {
        "kid": item.kid,
        "org_id": item.org_id,
        "org": org_name,
        "endpoint": item.endpoint,
        "status": item.state(now),
        "account_id": item.account_id,
        "created": _time(item.created_at),
        "expires": _time(item.expires_at),
        "bound": _time(item.bound_at),
        "revoked": _time(item.revoked_at),
    }


def minted_credential(minted: MintedCredential) -> dict[str, Any]:
    """A credential just minted: the one view that carries its HMAC key."""
    return {
        "kid": minted.kid,
        "hmac_key": minted.hmac_key,
        "endpoint": minted.endpoint,
        "directory": minted.directory,
        "expires": _time(minted.expires_at),
    }


def pending_check(pending: PendingCheck) -> dict[str, Any]:
    """A domain control check waiting for the domain: what to serve (http-01) or the TXT
    record to create (dns), and until when its token or Random Value is accepted."""
    common = {
        "domain": pending.domain,
        "method": pending.method,
        "expires": _time(pending.expires),
        "scope": domain_checks.SCOPES[pending.method],
    }
    if pending.method == domain_checks.DNS:
        return common | {
            "record_name": pending.record_name,
            "record_type": "TXT",
            "random_value": pending.token,
        }
    return common | {
        "token": pending.token,
        "url": pending.url,
        "expected_content": pending.expected_content,
    }


def token(record: TokenRecord) -> dict[str, Any]:
    """A console token, never its secret (only a hash of it is stored anyway)."""
    return {
        "id": record.id,
        "name": record.name,
        "role": record.role,
        "created": _time(record.created_at),
        "created_by": record.created_by,
        "revoked": _time(record.revoked_at),
    }


def account(item: Account) -> dict[str, Any]:
    return {
        "id": item.id,
        "endpoint": item.endpoint,
        "org_id": item.org_id,
        "status": item.status,
        "contact": item.contact,
        "eab_kid": item.eab_kid,
        "key_thumbprint": item.thumbprint,
        "created": _time(item.created_at),
    }


def certificate(
    item: Certificate, now: datetime, renewal: CertificateRenewal | None = None
) -> dict[str, Any]:
    shown = {
        "id": item.id,
        "serial": item.serial_hex,
        "names": item.names,
        "org_id": item.org_id,
        "endpoint": item.endpoint,
        "ca": item.ca_level,
        "profile": item.profile,
        "account_id": item.account_id,
        "not_before": _time(item.not_before),
        "not_after": _time(item.not_after),
        "days_left": max(0, (item.not_after - now).days),
        "revoked": _time(item.revoked_at),
        "revocation_reason": item.revocation_reason,
    }
    if renewal is not None:
        suggested = renewal.suggested
        shown["renewal_window"] = {
            "start": _time(suggested.window.start),
            "end": _time(suggested.window.end),
            "reason": suggested.why,
        }
        shown["replaced"] = renewal.replaced
    return shown


def audit_chain(report: ChainReport) -> dict[str, Any]:
    return {
        "intact": report.intact,
        "events": report.events,
        "head_hash": report.head_hash,
        "problems": list(report.problems),
    }


def audit_event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": _time(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "target": row["target"],
        "source": row["source"],
        "details": row["details"],
    }


def pulled_forward(done: PulledForward) -> dict[str, Any]:
    return {
        "window": {"start": _time(done.window.start), "end": _time(done.window.end)},
        "count": len(done.certificates),
        "certificates": [{"id": c.id, "serial": c.serial_hex} for c in done.certificates],
    }
