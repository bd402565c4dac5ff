"""Organisations and their domains (names and IP networks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from acmefleet.models import Organization, OrgDomain, ValidationScope
from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import org_domains, organizations

_ORG = Prepared(select(organizations).where(organizations.c.id == bindparam("p_id")))
_DOMAINS = Prepared(
    select(org_domains)
    .where(org_domains.c.org_id == bindparam("p_org"))
    .order_by(org_domains.c.name)
)


class AlreadyExists(Exception):
    pass


def _org(row: Any) -> Organization:
    return Organization(id=row.id, name=row.name, status=row.status, created_at=row.created_at)


def _domain(row: Any) -> OrgDomain:
    return OrgDomain(
        id=row.id,
        org_id=row.org_id,
        name=row.name,
        kind=row.kind,
        validated_at=row.validated_at,
        validated_until=row.validated_until,
        validation_method=row.validation_method,
        validated_by=row.validated_by,
        challenge_token=row.challenge_token,
        challenge_started_at=row.challenge_started_at,
        validation_scope=row.validation_scope,
        challenge_method=row.challenge_method,
    )


def create_org(conn: Connection, name: str, now: datetime) -> Organization:
    try:
        with conn.begin_nested():
            result = conn.execute(insert(organizations).values(name=name, created_at=now))
    except IntegrityError as exc:
        raise AlreadyExists(f"organisation {name!r} already exists") from exc
    org_id = result.inserted_primary_key
    assert org_id is not None
    return Organization(id=int(org_id[0]), name=name, status="active", created_at=now)


def get_org(conn: Connection, org_id: int) -> Organization | None:
    row = _ORG.first(conn, {"p_id": org_id})
    return _org(row) if row else None


def find_org(conn: Connection, name: str) -> Organization | None:
    row = conn.execute(select(organizations).where(organizations.c.name == name)).one_or_none()
    return _org(row) if row else None


def list_orgs(conn: Connection) -> list[Organization]:
    return [_org(r) for r in conn.execute(select(organizations).order_by(organizations.c.name))]


def set_org_status(conn: Connection, org_id: int, status: str) -> None:
    conn.execute(update(organizations).where(organizations.c.id == org_id).values(status=status))


def add_domain(conn: Connection, org_id: int, name: str, kind: str, now: datetime) -> OrgDomain:
    try:
        with conn.begin_nested():
            result = conn.execute(
                insert(org_domains).values(org_id=org_id, name=name, kind=kind, created_at=now)
            )
    except IntegrityError as exc:
        raise AlreadyExists(f"domain {name!r} is already in this organisation") from exc
    key = result.inserted_primary_key
    assert key is not None
    return OrgDomain(
        id=int(key[0]),
        org_id=org_id,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        validated_at=None,
        validated_until=None,
        validation_method=None,
        validated_by=None,
    )


def mark_validated(
    conn: Connection,
    domain_id: int,
    *,
    at: datetime,
    until: datetime,
    method: str,
    scope: ValidationScope,
    by: str,
) -> None:
    conn.execute(
        update(org_domains)
        .where(org_domains.c.id == domain_id)
        .values(
            validated_at=at,
            validated_until=until,
            validation_method=method,
            validation_scope=scope,
            validated_by=by,
        )
    )


def remove_domain(conn: Connection, domain_id: int) -> None:
    conn.execute(delete(org_domains).where(org_domains.c.id == domain_id))


def list_domains(conn: Connection, org_id: int) -> list[OrgDomain]:
    return [_domain(r) for r in _DOMAINS.rows(conn, {"p_org": org_id})]


def find_domain(conn: Connection, org_id: int, name: str) -> OrgDomain | None:
    query = select(org_domains).where(org_domains.c.org_id == org_id, org_domains.c.name == name)
    row = conn.execute(query).one_or_none()
    return _domain(row) if row else None


def get_domain(conn: Connection, domain_id: int) -> OrgDomain | None:
    row = conn.execute(select(org_domains).where(org_domains.c.id == domain_id)).one_or_none()
    return _domain(row) if row else None


def clear_validation(conn: Connection, domain_id: int) -> None:
    conn.execute(
        update(org_domains)
        .where(org_domains.c.id == domain_id)
        .values(
            validated_at=None,
            validated_until=None,
            validation_method=None,
            validation_scope=None,
            validated_by=None,
        )
    )


def set_challenge(
    conn: Connection,
    domain_id: int,
    token: str | None,
    at: datetime | None,
    method: str | None = None,
) -> None:
    """Start (or, with ``None``s, end) a console check of ``method``."""
    conn.execute(
        update(org_domains)
        .where(org_domains.c.id == domain_id)
        .values(challenge_token=token, challenge_started_at=at, challenge_method=method)
    )


def list_all_domains(conn: Connection) -> list[OrgDomain]:
    return [_domain(r) for r in conn.execute(select(org_domains).order_by(org_domains.c.name))]
