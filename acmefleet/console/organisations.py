"""Organisations and their domains."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.console.errors import Conflict, ConsoleError, NotFound
from acmefleet.identifiers import IdentifierSyntaxError, normalise_dns_name
from acmefleet.models import VALIDATION_SCOPES, Organization, OrgDomain, ValidationScope
from acmefleet.store import audit
from acmefleet.store import orgs as org_store

DEFAULT_VALIDATION_LIFETIME = timedelta(days=397)
MAX_ORG_NAME = 200
_NETWORK_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}(?:/[0-9]{1,3})?")

# A manual validation covers only the name unless the administrator asks for more.
DEFAULT_MANUAL_SCOPE: ValidationScope = "exact"


def parse_scope(raw: str) -> ValidationScope:
    """``exact`` (the name only) or ``subdomains`` (the name, its subdomains and wildcards)."""
    for scope in VALIDATION_SCOPES:
        if raw == scope:
            return scope
    raise ConsoleError(f"a validation scope is one of {', '.join(VALIDATION_SCOPES)}, not {raw!r}")


def create(
    conn: Connection, name: str, *, actor: str, now: datetime, source: str | None = None
) -> Organization:
    clean = name.strip()
    if not clean or len(clean) > MAX_ORG_NAME or not clean.isprintable():
        raise ConsoleError(f"an organisation name must be 1-{MAX_ORG_NAME} printable characters")
    try:
        org = org_store.create_org(conn, clean, now)
    except org_store.AlreadyExists as exc:
        raise Conflict(str(exc)) from exc
    audit.record(conn, at=now, actor=actor, action="org.create", target=clean, source=source)
    return org


def get(conn: Connection, name: str) -> Organization:
    org = org_store.find_org(conn, name)
    if org is None:
        raise NotFound(f"no organisation {name!r}")
    return org


def parse_domain(raw: str) -> tuple[str, str]:
    """A DNS domain (no wildcard) or an IP network in CIDR form: (normalised, kind).

    Whitespace around the value is dropped; inside it nothing but the syntax allows. The API,
    the CLI and the web page all store what this returns.
    """
    value = raw.strip()
    if "/" in value or value.replace(".", "").isdigit() or ":" in value:
        # ipaddress takes any string after "%" as an IPv6 zone, a newline included.
        try:
            if not _NETWORK_CHARS.fullmatch(value):
                raise ValueError(value)
            return ipaddress.ip_network(value, strict=False).compressed, "ip"
        except ValueError as exc:
            raise ConsoleError(f"{raw!r} is neither a domain nor an IP network") from exc
    if value.startswith("*."):
        raise ConsoleError(
            "add the domain itself: it owns its subdomains and wildcards "
            "(a DNS check, or a manual validation with the scope 'subdomains', covers them "
            "on public endpoints)"
        )
    try:
        return normalise_dns_name(value, allow_wildcard=False), "dns"
    except IdentifierSyntaxError as exc:
        raise ConsoleError(str(exc)) from exc


def add_domain(
    conn: Connection,
    org_name: str,
    raw_domain: str,
    *,
    validated: bool,
    actor: str,
    now: datetime,
    justification: str | None = None,
    lifetime: timedelta = DEFAULT_VALIDATION_LIFETIME,
    scope: str = DEFAULT_MANUAL_SCOPE,
    source: str | None = None,
) -> OrgDomain:
    """Add a domain; with ``validated``, record a manual validation of ``scope`` too."""
    org = get(conn, org_name)
    checked_scope = parse_scope(scope)
    name, kind = parse_domain(raw_domain)
    try:
        domain = org_store.add_domain(conn, org.id, name, kind, now)
    except org_store.AlreadyExists as exc:
        raise Conflict(str(exc)) from exc
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="domain.add",
        target=name,
        source=source,
        details={"org": org.name},
    )
    if validated:
        mark_validated(
            conn,
            org.name,
            name,
            actor=actor,
            now=now,
            method="manual",
            scope=checked_scope,
            justification=justification,
            lifetime=lifetime,
        )
        found = org_store.find_domain(conn, org.id, name)
        assert found is not None
        return found
    return domain


def mark_validated(
    conn: Connection,
    org_name: str,
    domain_name: str,
    *,
    actor: str,
    now: datetime,
    method: str,
    scope: ValidationScope,
    justification: str | None = None,
    lifetime: timedelta = DEFAULT_VALIDATION_LIFETIME,
) -> None:
    org = get(conn, org_name)
    name, _kind = parse_domain(domain_name)
    domain = org_store.find_domain(conn, org.id, name)
    if domain is None:
        raise NotFound(f"organisation {org.name!r} has no domain {name!r}")
    record_validation(
        conn,
        domain,
        method=method,
        scope=scope,
        actor=actor,
        now=now,
        lifetime=lifetime,
        details={"org": org.name, "justification": justification},
    )


def record_validation(
    conn: Connection,
    domain: OrgDomain,
    *,
    method: str,
    scope: ValidationScope,
    actor: str,
    now: datetime,
    lifetime: timedelta,
    source: str | None = None,
    details: dict[str, object] | None = None,
) -> None:
    """The one way a domain becomes validated: stored with its scope until now + lifetime,
    and audited."""
    org_store.mark_validated(
        conn, domain.id, at=now, until=now + lifetime, method=method, scope=scope, by=actor
    )
    org_store.set_challenge(conn, domain.id, None, None)
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="domain.validate",
        target=domain.name,
        source=source,
        details={
            "method": method,
            "scope": scope,
            **(details or {}),
            "until": (now + lifetime).isoformat(),
        },
    )


def get_by_id(conn: Connection, org_id: int) -> Organization:
    org = org_store.get_org(conn, org_id)
    if org is None:
        raise NotFound(f"no organisation with id {org_id}")
    return org


def set_status(
    conn: Connection,
    org_id: int,
    status: str,
    *,
    actor: str,
    now: datetime,
    source: str | None = None,
) -> Organization:
    org = get_by_id(conn, org_id)
    if status not in ("active", "disabled"):
        raise ConsoleError("status must be 'active' or 'disabled'")
    org_store.set_org_status(conn, org.id, status)
    audit.record(
        conn,
        at=now,
        actor=actor,
        action=f"org.{'enable' if status == 'active' else 'disable'}",
        target=org.name,
        source=source,
    )
    return get_by_id(conn, org_id)


def get_domain(conn: Connection, domain_id: int) -> OrgDomain:
    domain = org_store.get_domain(conn, domain_id)
    if domain is None:
        raise NotFound(f"no domain with id {domain_id}")
    return domain


def remove_domain(
    conn: Connection, domain_id: int, *, actor: str, now: datetime, source: str | None = None
) -> None:
    from acmefleet.store import delegations as delegation_store

    domain = get_domain(conn, domain_id)
    delegation_store.remove_for_domain(conn, domain.id)
    org_store.remove_domain(conn, domain.id)
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="domain.remove",
        target=domain.name,
        source=source,
        details={"org_id": domain.org_id},
    )


def validate_manually(
    conn: Connection,
    domain_id: int,
    *,
    justification: str,
    actor: str,
    now: datetime,
    lifetime: timedelta = DEFAULT_VALIDATION_LIFETIME,
    scope: str = DEFAULT_MANUAL_SCOPE,
    source: str | None = None,
) -> OrgDomain:
    """An administrator vouches for the domain, for the name only (``exact``, the default) or
    for its whole subtree (``subdomains``); the justification is kept in the audit log."""
    domain = get_domain(conn, domain_id)
    checked_scope = parse_scope(scope)
    text = justification.strip()
    if len(text) < 3 or len(text) > 1000:
        raise ConsoleError("a manual validation needs a justification of 3-1000 characters")
    if lifetime <= timedelta(0) or lifetime > timedelta(days=825):
        raise ConsoleError("a validation lasts between 1 and 825 days")
    record_validation(
        conn,
        domain,
        method="manual",
        scope=checked_scope,
        actor=actor,
        now=now,
        lifetime=lifetime,
        source=source,
        details={"justification": text},
    )
    return get_domain(conn, domain.id)


def unvalidate(
    conn: Connection, domain_id: int, *, actor: str, now: datetime, source: str | None = None
) -> OrgDomain:
    domain = get_domain(conn, domain_id)
    org_store.clear_validation(conn, domain.id)
    audit.record(
        conn, at=now, actor=actor, action="domain.unvalidate", target=domain.name, source=source
    )
    return get_domain(conn, domain.id)
