"""Orders, authorizations and challenges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, insert, select, update

from acmefleet.identifiers import Identifier, IdentifierType
from acmefleet.models import Authorization, Challenge, Order
from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import (
    accounts,
    authorizations,
    challenges,
    order_authorizations,
    orders,
)

# Statements are built once and run on the request path through store.prepared.
_INSERT_AUTHZ = Prepared(insert(authorizations))
_INSERT_CHALLENGE = Prepared(insert(challenges))
_INSERT_ORDER = Prepared(insert(orders))
_INSERT_ORDER_AUTHZ = Prepared(insert(order_authorizations))
_CHALLENGES_OF = Prepared(
    select(challenges).where(challenges.c.authz_id == bindparam("p_id")).order_by(challenges.c.type)
)
# Every challenge of an order's authorizations, in one statement.
_CHALLENGES_OF_ORDER = Prepared(
    select(challenges)
    .join(order_authorizations, order_authorizations.c.authz_id == challenges.c.authz_id)
    .where(order_authorizations.c.order_id == bindparam("p_id"))
    .order_by(challenges.c.type)
)
_ORDER = Prepared(select(orders).where(orders.c.id == bindparam("p_id")))
_ORDER_AUTHZS = Prepared(
    select(authorizations)
    .join(order_authorizations, order_authorizations.c.authz_id == authorizations.c.id)
    .where(order_authorizations.c.order_id == bindparam("p_id"))
    .order_by(order_authorizations.c.position)
)
_AUTHZ = Prepared(select(authorizations).where(authorizations.c.id == bindparam("p_id")))
_CHALLENGE = Prepared(select(challenges).where(challenges.c.id == bindparam("p_id")))
_SAME_NAME = and_(
    authorizations.c.identifier_type == bindparam("p_type"),
    authorizations.c.identifier_value == bindparam("p_value"),
    authorizations.c.wildcard == bindparam("p_wildcard"),
    authorizations.c.expires_at > bindparam("p_now"),
)
_PENDING_AUTHZ = Prepared(
    select(authorizations)
    .where(
        authorizations.c.account_id == bindparam("p_account"),
        authorizations.c.status == "pending",
        _SAME_NAME,
    )
    .order_by(authorizations.c.expires_at.desc())
    .limit(1)
)
# A valid authorization proven by a challenge validated since ``p_since``, newest first.
_VALIDATED_AUTHZ = (
    select(authorizations, challenges.c.validated_at.label("proven_at"))
    .join(
        challenges,
        and_(challenges.c.authz_id == authorizations.c.id, challenges.c.status == "valid"),
    )
    .join(accounts, accounts.c.id == authorizations.c.account_id)
    .where(
        authorizations.c.status == "valid",
        challenges.c.validated_at >= bindparam("p_since"),
        _SAME_NAME,
    )
    .order_by(challenges.c.validated_at.desc(), authorizations.c.id)
    .limit(1)
)
_VALIDATED_BY_ACCOUNT = Prepared(
    _VALIDATED_AUTHZ.where(authorizations.c.account_id == bindparam("p_account"))
)
# Any active account of the organisation on the same endpoint (never another organisation:
# nor another endpoint, whose challenge types and perspectives may differ).
_VALIDATED_IN_ORG = Prepared(
    _VALIDATED_AUTHZ.where(
        accounts.c.org_id == bindparam("p_org"),
        accounts.c.endpoint == bindparam("p_endpoint"),
        accounts.c.status == "valid",
    )
)
_HOLDS_VALID_AUTHZ = Prepared(
    select(authorizations.c.id)
    .where(
        authorizations.c.account_id == bindparam("p_account"),
        authorizations.c.identifier_value == bindparam("p_value"),
        authorizations.c.status == "valid",
        authorizations.c.expires_at > bindparam("p_now"),
    )
    .limit(1)
)
_SET_CHALLENGE = Prepared(
    update(challenges)
    .where(challenges.c.id == bindparam("p_id"), challenges.c.status == bindparam("p_expected"))
    .values(
        status=bindparam("p_status"),
        validated_at=bindparam("p_validated_at"),
        error=bindparam("p_error"),
        processing_since=bindparam("p_processing_since"),
        # A change of state ends any claim on the validation (see store.validation_queue).
        lease_owner=None,
        lease_until=None,
    )
)
_SET_AUTHZ = Prepared(
    update(authorizations)
    .where(
        authorizations.c.id == bindparam("p_id"),
        authorizations.c.status == bindparam("p_expected"),
    )
    .values(status=bindparam("p_status"))
)
_SET_CAA_CHECKED = Prepared(
    update(authorizations)
    .where(authorizations.c.id == bindparam("p_id"))
    .values(caa_checked_at=bindparam("p_at"))
)
_SET_FINALIZATION = Prepared(
    update(orders)
    .where(orders.c.id == bindparam("p_id"), orders.c.finalization == bindparam("p_expected"))
    .values(
        finalization=bindparam("p_finalization"),
        certificate_id=bindparam("p_certificate"),
        error=bindparam("p_error"),
    )
)


def challenge_of_row(row: Row[tuple[object, ...]]) -> Challenge:
    return Challenge(
        id=row.id,
        authz_id=row.authz_id,
        type=row.type,
        token=row.token,
        status=row.status,
        validated_at=row.validated_at,
        error=row.error,
        processing_since=row.processing_since,
    )


def _authorization(row: Row[tuple[object, ...]], chall: tuple[Challenge, ...]) -> Authorization:
    identifier_type: IdentifierType = row.identifier_type
    return Authorization(
        id=row.id,
        account_id=row.account_id,
        identifier=Identifier(type=identifier_type, value=row.identifier_value),
        wildcard=row.wildcard,
        stored_status=row.status,
        expires_at=row.expires_at,
        challenges=chall,
        caa_checked_at=row.caa_checked_at,
    )


def _load_authorizations(conn: Connection, rows: Sequence[Any]) -> list[Authorization]:
    """Authorizations with their challenges (one statement each: these finds return one)."""
    return [
        _authorization(
            r, tuple(challenge_of_row(c) for c in _CHALLENGES_OF.rows(conn, {"p_id": r.id}))
        )
        for r in rows
    ]


def insert_authorization(conn: Connection, authz: Authorization, created_at: datetime) -> None:
    _INSERT_AUTHZ.run(
        conn,
        dict(
            id=authz.id,
            account_id=authz.account_id,
            identifier_type=authz.identifier.type,
            identifier_value=authz.identifier.value,
            wildcard=authz.wildcard,
            status=authz.stored_status,
            expires_at=authz.expires_at,
            created_at=created_at,
        ),
    )
    if authz.challenges:
        _INSERT_CHALLENGE.run_many(
            conn,
            [
                {
                    "id": c.id,
                    "authz_id": authz.id,
                    "type": c.type,
                    "token": c.token,
                    "status": c.status,
                    "validated_at": c.validated_at,
                }
                for c in authz.challenges
            ],
        )


def insert_order(conn: Connection, order: Order, created_at: datetime) -> None:
    _INSERT_ORDER.run(
        conn,
        dict(
            id=order.id,
            account_id=order.account_id,
            profile=order.profile,
            identifiers=[i.as_wire() for i in order.identifiers],
            expires_at=order.expires_at,
            not_before=order.not_before,
            not_after=order.not_after,
            finalization=order.finalization,
            created_at=created_at,
            replaces=order.replaces,
            replaces_certificate=order.replaces_certificate,
        ),
    )
    _INSERT_ORDER_AUTHZ.run_many(
        conn,
        [
            {"order_id": order.id, "authz_id": a.id, "position": n}
            for n, a in enumerate(order.authorizations)
        ],
    )


def get_order(conn: Connection, order_id: str) -> Order | None:
    row = _ORDER.first(conn, {"p_id": order_id})
    if row is None:
        return None
    by_authz: dict[str, list[Challenge]] = {}
    for challenge in _CHALLENGES_OF_ORDER.rows(conn, {"p_id": order_id}):
        by_authz.setdefault(challenge.authz_id, []).append(challenge_of_row(challenge))
    authz_rows = _ORDER_AUTHZS.rows(conn, {"p_id": order_id})
    return Order(
        id=row.id,
        account_id=row.account_id,
        profile=row.profile,
        identifiers=tuple(Identifier(type=i["type"], value=i["value"]) for i in row.identifiers),
        expires_at=row.expires_at,
        not_before=row.not_before,
        not_after=row.not_after,
        finalization=row.finalization,
        error=row.error,
        certificate_id=row.certificate_id,
        authorizations=tuple(_authorization(r, tuple(by_authz.get(r.id, ()))) for r in authz_rows),
        replaces=row.replaces,
        replaces_certificate=row.replaces_certificate,
    )


def get_authorization(conn: Connection, authz_id: str) -> Authorization | None:
    row = _AUTHZ.first(conn, {"p_id": authz_id})
    if row is None:
        return None
    return _load_authorizations(conn, [row])[0]


def get_challenge(conn: Connection, challenge_id: str) -> Challenge | None:
    row = _CHALLENGE.first(conn, {"p_id": challenge_id})
    return challenge_of_row(row) if row else None


def _name_params(identifier: Identifier, wildcard: bool, now: datetime) -> dict[str, Any]:
    return {
        "p_type": identifier.type,
        "p_value": identifier.value,
        "p_wildcard": wildcard,
        "p_now": now,
    }


def find_pending_authorization(
    conn: Connection, account_id: str, identifier: Identifier, wildcard: bool, now: datetime
) -> Authorization | None:
    """An unexpired pending authorization of this account for the identifier."""
    params = {"p_account": account_id, **_name_params(identifier, wildcard, now)}
    found = _load_authorizations(conn, _PENDING_AUTHZ.rows(conn, params))
    return found[0] if found else None


def find_validated_authorization(
    conn: Connection,
    identifier: Identifier,
    wildcard: bool,
    *,
    now: datetime,
    validated_since: datetime,
    account_id: str,
    org_id: int | None = None,
    endpoint: str | None = None,
) -> tuple[Authorization, datetime] | None:
    """The newest unexpired valid authorization for the identifier whose challenge was
    validated at or after ``validated_since``, with that moment: the account's own, or
    (``org_id`` and ``endpoint`` given) one of any active account of that organisation on
    that endpoint."""
    params = {
        "p_account": account_id,
        "p_since": validated_since,
        "p_org": org_id,
        "p_endpoint": endpoint,
        **_name_params(identifier, wildcard, now),
    }
    query = _VALIDATED_BY_ACCOUNT if org_id is None else _VALIDATED_IN_ORG
    rows = query.rows(conn, params)
    if not rows:
        return None
    return _load_authorizations(conn, rows)[0], rows[0].proven_at


def holds_valid_authorization(
    conn: Connection, account_id: str, identifier_value: str, now: datetime
) -> bool:
    """The account has an unexpired valid authorization for this identifier value.

    Matched on the value alone (any identifier type, wildcard or not): revocation by an
    authorized account (RFC 8555 §7.6) asks this per certificate name.
    """
    params = {"p_account": account_id, "p_value": identifier_value, "p_now": now}
    return _HOLDS_VALID_AUTHZ.first(conn, params) is not None


def set_challenge_state(
    conn: Connection,
    challenge_id: str,
    *,
    expected: str,
    status: str,
    validated_at: datetime | None = None,
    error: dict[str, Any] | None = None,
    processing_since: datetime | None = None,
) -> bool:
    """Move a challenge from ``expected`` to ``status``; False if another writer moved it.

    ``processing_since`` is when a challenge became ``processing`` (kept only while it is)."""
    params = {
        "p_id": challenge_id,
        "p_expected": expected,
        "p_status": status,
        "p_validated_at": validated_at,
        "p_error": error,
        "p_processing_since": processing_since,
    }
    return _SET_CHALLENGE.run(conn, params) == 1


def set_authorization_status(
    conn: Connection, authz_id: str, *, expected: str, status: str
) -> bool:
    params = {"p_id": authz_id, "p_expected": expected, "p_status": status}
    return _SET_AUTHZ.run(conn, params) == 1


def set_caa_checked(conn: Connection, authz_id: str, checked_at: datetime) -> None:
    """Record that CAA allowed issuance for the authorization's name at ``checked_at``."""
    _SET_CAA_CHECKED.run(conn, {"p_id": authz_id, "p_at": checked_at})


def set_finalization(
    conn: Connection,
    order_id: str,
    *,
    expected: str,
    finalization: str,
    certificate_id: str | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    params = {
        "p_id": order_id,
        "p_expected": expected,
        "p_finalization": finalization,
        "p_certificate": certificate_id,
        "p_error": error,
    }
    return _SET_FINALIZATION.run(conn, params) == 1


def list_order_ids(
    conn: Connection, account_id: str, *, after: str | None, limit: int
) -> list[str]:
    """An account's order ids in creation order, paged by the last id seen."""
    query = select(orders.c.id, orders.c.created_at).where(orders.c.account_id == account_id)
    if after is not None:
        anchor = conn.execute(
            select(orders.c.created_at).where(orders.c.id == after)
        ).scalar_one_or_none()
        if anchor is not None:
            query = query.where(
                (orders.c.created_at > anchor)
                | ((orders.c.created_at == anchor) & (orders.c.id > after))
            )
    query = query.order_by(orders.c.created_at, orders.c.id).limit(limit)
    return [row.id for row in conn.execute(query)]
