"""Orders, authorizations and challenges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from acmefleet.identifiers import Identifier, IdentifierType
from acmefleet.models import Authorization, Challenge, Order
from acmefleet.store.schema import authorizations, challenges, order_authorizations, orders


def _challenge(row: Row[tuple[object, ...]]) -> Challenge:
    return Challenge(
        row.id, row.authz_id, row.type, row.token, row.status, row.validated_at, row.error
    )


def _authorization(row: Row[tuple[object, ...]], chall: tuple[Challenge, ...]) -> Authorization:
    identifier_type: IdentifierType = row.identifier_type
    return Authorization(
        row.id,
        row.account_id,
        Identifier(identifier_type, row.identifier_value),
        row.wildcard,
        row.status,
        row.expires_at,
        chall,
    )


def _load_authorizations(conn: Connection, rows: Sequence[Row[Any]]) -> list[Authorization]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    by_authz: dict[str, list[Challenge]] = {i: [] for i in ids}
    query = select(challenges).where(challenges.c.authz_id.in_(ids)).order_by(challenges.c.type)
    for row in conn.execute(query):
        by_authz[row.authz_id].append(_challenge(row))
    return [_authorization(r, tuple(by_authz[r.id])) for r in rows]


def insert_authorization(conn: Connection, authz: Authorization, created_at: datetime) -> None:
    conn.execute(
        insert(authorizations).values(
            id=authz.id,
            account_id=authz.account_id,
            identifier_type=authz.identifier.type,
            identifier_value=authz.identifier.value,
            wildcard=authz.wildcard,
            status=authz.stored_status,
            expires_at=authz.expires_at,
            created_at=created_at,
        )
    )
    if authz.challenges:
        conn.execute(
            insert(challenges),
            [
                {
                    "id": c.id,
                    "authz_id": authz.id,
                    "type": c.type,
                    "token": c.token,
                    "status": c.status,
                }
                for c in authz.challenges
            ],
        )


def insert_order(conn: Connection, order: Order, created_at: datetime) -> None:
    conn.execute(
        insert(orders).values(
            id=order.id,
            account_id=order.account_id,
            profile=order.profile,
            identifiers=[i.as_wire() for i in order.identifiers],
            expires_at=order.expires_at,
            not_before=order.not_before,
            not_after=order.not_after,
            finalization=order.finalization,
            created_at=created_at,
        )
    )
    conn.execute(
        insert(order_authorizations),
        [
            {"order_id": order.id, "authz_id": a.id, "position": n}
            for n, a in enumerate(order.authorizations)
        ],
    )


def get_order(conn: Connection, order_id: str) -> Order | None:
    row = conn.execute(select(orders).where(orders.c.id == order_id)).one_or_none()
    if row is None:
        return None
    authz_rows = conn.execute(
        select(authorizations)
        .join(order_authorizations, order_authorizations.c.authz_id == authorizations.c.id)
        .where(order_authorizations.c.order_id == order_id)
        .order_by(order_authorizations.c.position)
    ).all()
    return Order(
        row.id,
        row.account_id,
        row.profile,
        tuple(Identifier(i["type"], i["value"]) for i in row.identifiers),
        row.expires_at,
        row.not_before,
        row.not_after,
        row.finalization,
        row.error,
        row.certificate_id,
        tuple(_load_authorizations(conn, authz_rows)),
    )


def get_authorization(conn: Connection, authz_id: str) -> Authorization | None:
    row = conn.execute(select(authorizations).where(authorizations.c.id == authz_id)).one_or_none()
    if row is None:
        return None
    return _load_authorizations(conn, [row])[0]


def get_challenge(conn: Connection, challenge_id: str) -> Challenge | None:
    query = select(challenges).where(challenges.c.id == challenge_id)
    row = conn.execute(query).one_or_none()
    return _challenge(row) if row else None


def find_reusable_authorization(
    conn: Connection, account_id: str, identifier: Identifier, wildcard: bool, now: datetime
) -> Authorization | None:
    """A valid (or else pending) authorization of this account for the identifier."""
    query = (
        select(authorizations)
        .where(
            authorizations.c.account_id == account_id,
            authorizations.c.identifier_type == identifier.type,
            authorizations.c.identifier_value == identifier.value,
            authorizations.c.wildcard == wildcard,
            authorizations.c.status.in_(("valid", "pending")),
            authorizations.c.expires_at > now,
        )
        .order_by(authorizations.c.status.desc(), authorizations.c.expires_at.desc())
        .limit(1)
    )
    rows = conn.execute(query).all()
    found = _load_authorizations(conn, rows)
    return found[0] if found else None


def set_challenge_state(
    conn: Connection,
    challenge_id: str,
    *,
    expected: str,
    status: str,
    validated_at: datetime | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    """Move a challenge from ``expected`` to ``status``; False if another writer moved it."""
    result = conn.execute(
        update(challenges)
        .where(challenges.c.id == challenge_id, challenges.c.status == expected)
        .values(status=status, validated_at=validated_at, error=error)
    )
    return result.rowcount == 1


def set_authorization_status(
    conn: Connection, authz_id: str, *, expected: str, status: str
) -> bool:
    result = conn.execute(
        update(authorizations)
        .where(authorizations.c.id == authz_id, authorizations.c.status == expected)
        .values(status=status)
    )
    return result.rowcount == 1


def set_finalization(
    conn: Connection,
    order_id: str,
    *,
    expected: str,
    finalization: str,
    certificate_id: str | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    result = conn.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.finalization == expected)
        .values(finalization=finalization, certificate_id=certificate_id, error=error)
    )
    return result.rowcount == 1


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


def processing_challenges(conn: Connection) -> list[str]:
    """Challenges whose validation was started (for resuming after a restart)."""
    query = select(challenges.c.id).where(challenges.c.status == "processing")
    return [row.id for row in conn.execute(query)]
