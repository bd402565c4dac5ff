"""Authorization reuse: which earlier authorization spares a name in a new order its challenge.

CA/B BR 4.2.1 (and 3.2.2.4): validation data may serve new certificates for at most the reuse
period in force (398 days; 200 from 2026-03-15, 100 from 2027-03-15, 10 from 2029-03-15:
``models.dcv_reuse_period``). The configured window (``[validation]
authorization_reuse_days``, default 30) is counted from the challenge's validation, not from
the authorization's creation, and capped at each issuance by the period then in force: a
configuration loaded under a longer period cannot outlive the schedule. The scope is the
validating account's own orders, or those of every active account of its organisation on the
same endpoint; never another organisation's, never another endpoint's (whose challenge types
and validation perspectives may differ). A wildcard and the plain name are separate
authorizations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.baseline import dcv_reuse_period, dcv_reuse_until
from acmefleet.config import ReuseScope
from acmefleet.identifiers import Identifier
from acmefleet.models import Account, Authorization, Challenge
from acmefleet.store import orders as order_store
from acmefleet.store.ids import new_id


@dataclass(frozen=True)
class Reuse:
    """How long a validated authorization serves new orders (``window`` from its challenge's
    validation; zero: never), and whose: ``account`` or ``organisation``."""

    window: timedelta = timedelta(days=30)
    scope: ReuseScope = "account"

    def window_at(self, now: datetime) -> timedelta:
        """The window capped by the BR 4.2.1 reuse period in force at ``now``."""
        return min(self.window, dcv_reuse_period(now))


@dataclass(frozen=True)
class Reused:
    authorization: Authorization
    # Until when the proof behind it may be used (None: a pending one, nothing proven yet).
    usable_until: datetime | None
    # False: a new copy for this account, which the order stores with its own.
    stored: bool


def reusable_authorization(
    conn: Connection,
    endpoint: str,
    account: Account,
    identifier: Identifier,
    offered: tuple[str, ...],
    reuse: Reuse,
    now: datetime,
    authz_expiry: datetime,
) -> Reused | None:
    """An authorization that spares ``identifier`` a new challenge on ``endpoint``.

    First a valid one proven within the window by a challenge type the endpoint still offers
    for the name (``offered``); else a pending one of the account, whatever the window (it
    reuses no proof; it keeps one account from piling up pending authorizations)."""
    base = Identifier(identifier.type, identifier.base_name)
    wildcard = identifier.is_wildcard
    if reuse.window > timedelta(0):
        found = _validated(conn, endpoint, account, base, wildcard, offered, reuse, now)
        if found is not None:
            return _for_account(account, found, reuse, authz_expiry, now)
    pending = order_store.find_pending_authorization(conn, account.id, base, wildcard, now)
    if pending is not None and pending.challenges:
        return Reused(pending, None, stored=True)
    return None


def _validated(
    conn: Connection,
    endpoint: str,
    account: Account,
    base: Identifier,
    wildcard: bool,
    offered: tuple[str, ...],
    reuse: Reuse,
    now: datetime,
) -> tuple[Authorization, datetime, Challenge] | None:
    """The newest valid authorization in scope and window, when it was proven, and by
    which of its challenges."""
    since = now - reuse.window_at(now)
    found = order_store.find_validated_authorization(
        conn, base, wildcard, now=now, validated_since=since, account_id=account.id
    )
    if found is None and reuse.scope == "organisation":
        found = order_store.find_validated_authorization(
            conn,
            base,
            wildcard,
            now=now,
            validated_since=since,
            account_id=account.id,
            org_id=account.org_id,
            endpoint=endpoint,
        )
    if found is None:
        return None
    authz, proven_at = found
    proof = next((c for c in authz.challenges if c.status == "valid" and c.type in offered), None)
    return None if proof is None else (authz, proven_at, proof)


def _for_account(
    account: Account,
    found: tuple[Authorization, datetime, Challenge],
    reuse: Reuse,
    authz_expiry: datetime,
    now: datetime,
) -> Reused:
    authz, proven_at, proof = found
    usable_until = dcv_reuse_until(proven_at, reuse.window, now)
    if authz.account_id == account.id:
        return Reused(authz, usable_until, stored=True)
    # Another account's authorization is not this account's to fetch (RFC 8555 §7.5): it
    # gets its own, valid at once, carrying the proof (type, token, time) it rests on.
    copy_id = new_id()
    copy = Authorization(
        id=copy_id,
        account_id=account.id,
        identifier=authz.identifier,
        wildcard=authz.wildcard,
        stored_status="valid",
        expires_at=min(authz_expiry, usable_until, authz.expires_at),
        challenges=(replace(proof, id=new_id(), authz_id=copy_id),),
    )
    return Reused(copy, usable_until, stored=False)
