"""Delegating an organisation's domains to chosen ACME accounts or EAB credentials."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from acmefleet.console import organisations
from acmefleet.console.errors import Conflict, ConsoleError, NotFound
from acmefleet.store import accounts as account_store
from acmefleet.store import audit
from acmefleet.store import delegations as delegation_store
from acmefleet.store import eab as eab_store
from acmefleet.store.delegations import Delegation


def delegate(
    conn: Connection,
    domain_id: int,
    *,
    account_id: str | None,
    eab_kid: str | None,
    actor: str,
    now: datetime,
    source: str | None = None,
) -> Delegation:
    domain = organisations.get_domain(conn, domain_id)
    if (account_id is None) == (eab_kid is None):
        raise ConsoleError("delegate to exactly one of an account or an EAB credential")
    if account_id is not None:
        account = account_store.get_account(conn, account_id)
        if account is None:
            raise NotFound(f"no account {account_id!r}")
        org_id = account.org_id
    else:
        assert eab_kid is not None
        credential = eab_store.get_credential(conn, eab_kid)
        if credential is None:
            raise NotFound(f"no EAB credential {eab_kid!r}")
        org_id = credential.org_id
    if org_id != domain.org_id:
        raise ConsoleError("a domain can only be delegated within its organisation")
    for existing in delegation_store.list_for_domain(conn, domain.id):
        if (existing.account_id, existing.eab_kid) == (account_id, eab_kid):
            raise Conflict("this delegation exists already")
    delegation = delegation_store.add(
        conn, domain.id, account_id=account_id, eab_kid=eab_kid, now=now
    )
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="domain.delegate",
        target=domain.name,
        source=source,
        details={"account": account_id, "eab_kid": eab_kid},
    )
    return delegation


def list_for_domain(conn: Connection, domain_id: int) -> list[Delegation]:
    organisations.get_domain(conn, domain_id)
    return delegation_store.list_for_domain(conn, domain_id)


def remove(
    conn: Connection, delegation_id: int, *, actor: str, now: datetime, source: str | None = None
) -> None:
    delegation = delegation_store.get(conn, delegation_id)
    if delegation is None:
        raise NotFound(f"no delegation with id {delegation_id}")
    delegation_store.remove(conn, delegation_id)
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="domain.undelegate",
        target=str(delegation.domain_id),
        source=source,
        details={"account": delegation.account_id, "eab_kid": delegation.eab_kid},
    )
