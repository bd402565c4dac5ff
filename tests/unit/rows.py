"""Stored rows for unit tests, written through the store modules the server uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from acmefleet.identifiers import Identifier
from acmefleet.jose.keys import thumbprint
from acmefleet.models import Account, Authorization, AuthzStatus, Challenge, Order
from acmefleet.store import accounts as account_store
from acmefleet.store import orders as order_store
from acmefleet.store import orgs as org_store
from acmefleet.store.ids import new_id

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def account(
    conn: Connection, endpoint: str = "private", jwk: dict[str, Any] | None = None
) -> Account:
    """An account of a fresh organisation (accounts reference an organisation).

    Without ``jwk`` the key is a stand-in that no signature verifies with; its
    thumbprint is still a real RFC 7638 one, so lookups by thumbprint behave.
    """
    org = org_store.create_org(conn, f"org-{new_id()}", NOW)
    key = jwk if jwk is not None else {"kty": "OKP", "crv": "Ed25519", "x": new_id()}
    created = Account(
        id=new_id(),
        endpoint=endpoint,
        org_id=org.id,
        jwk=key,
        thumbprint=thumbprint(key),
        status="valid",
        contact=[],
        eab_kid=new_id(),
        created_at=NOW,
    )
    account_store.insert_account(conn, created)
    return created


def authorization(
    conn: Connection,
    owner: Account,
    status: AuthzStatus = "pending",
    *,
    value: str = "a.example.com",
    expires_at: datetime = NOW + timedelta(days=1),
) -> Authorization:
    authz_id = new_id()
    created = Authorization(
        authz_id,
        owner.id,
        Identifier("dns", value),
        False,
        status,
        expires_at,
        (Challenge(new_id(), authz_id, "http-01", new_id(), "pending", None, None),),
    )
    order_store.insert_authorization(conn, created, NOW)
    return created


def order(
    conn: Connection,
    owner: Account,
    authz: Authorization,
    *,
    expires_at: datetime = NOW + timedelta(days=1),
) -> Order:
    """A stored order for ``authz``'s name, not finalized."""
    created = Order(
        id=new_id(),
        account_id=owner.id,
        profile="private-server",
        identifiers=(Identifier(authz.identifier.type, authz.identifier.value),),
        expires_at=expires_at,
        not_before=None,
        not_after=None,
        finalization="none",
        error=None,
        certificate_id=None,
        authorizations=(authz,),
    )
    order_store.insert_order(conn, created, NOW)
    return created
