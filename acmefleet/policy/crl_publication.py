"""Each issuing CA's CRL, published once for every worker and replica (RFC 5280 §5).

A CRL is rebuilt when a revocation was committed after the published one was built (its
revocation mark differs from the database's) or when it is ``REISSUE_AFTER`` old, by
whichever process notices first: a fetch of the CRL, or any process's housekeeping round.
It is signed outside any write transaction, then replaces the published one only if that
one is still the CRL it read: two processes that raced publish one CRL per number, and the
loser serves the winner's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from acmefleet.ca.crl import RevokedEntry, build_crl
from acmefleet.ca.hierarchy import Authority
from acmefleet.clock import Clock
from acmefleet.errors import StoreUnavailable
from acmefleet.models import Certificate
from acmefleet.store import certificates as cert_store
from acmefleet.store import crls as crl_store
from acmefleet.store.crls import PublishedCrl, RevocationMark
from acmefleet.store.engine import Database

CRL_VALIDITY = timedelta(days=1)
# Well before nextUpdate: a relying party that fetched just before the reissue still holds
# a CRL valid for 18 hours, and an outage of the database shorter than that is invisible.
REISSUE_AFTER = timedelta(hours=6)
# Each lost race means another process published a newer CRL; a third loss in a row means
# revocations arrive faster than CRLs are signed, and the newest published one is served.
ATTEMPTS = 3


def is_current(crl: PublishedCrl, mark: RevocationMark, now: datetime) -> bool:
    # A thisUpdate ahead of this clock (another replica's, a little fast) counts as fresh.
    return crl.mark == mark and now - crl.this_update < REISSUE_AFTER


def current_crl(db: Database, authority: Authority, level: str, clock: Clock) -> PublishedCrl:
    """The published CRL of ``level``'s issuing CA, first rebuilt if it is not current.

    Raises StoreUnavailable only when nothing valid can be served: a published CRL still
    before its nextUpdate is served while the database cannot take a new one."""
    return _current(db, authority, level, clock)[0]


def publish_stale(db: Database, authorities: dict[str, Authority], clock: Clock) -> list[str]:
    """Housekeeping: every CA's CRL made current; the levels whose CRL this call published."""
    return [
        level
        for level, authority in authorities.items()
        if _current(db, authority, level, clock)[1]
    ]


def _current(
    db: Database, authority: Authority, level: str, clock: Clock
) -> tuple[PublishedCrl, bool]:
    for _ in range(ATTEMPTS):
        now = clock.now()
        with db.read() as conn:
            # The mark first: a revocation committed between the two reads is then in the
            # list but not in the mark, which costs one more build, never a CRL missing it.
            mark = cert_store.revocation_mark(conn, level)
            found = crl_store.published(conn, level)
            if found is not None and is_current(found, mark, now):
                return found, False
            revoked = cert_store.list_revoked(conn, level)
        built = _build(authority, level, mark, revoked, found, now)
        try:
            with db.write() as conn:
                if crl_store.publish(conn, built, None if found is None else found.number):
                    return built, True
        except StoreUnavailable:
            if found is not None and now < found.next_update:
                return found, False
            raise
    with db.read() as conn:
        newest = crl_store.published(conn, level)
    if newest is None:  # a lost race means a row exists, and rows are never deleted
        raise StoreUnavailable("the published CRL could not be read")
    return newest, False


def _build(
    authority: Authority,
    level: str,
    mark: RevocationMark,
    revoked: list[Certificate],
    previous: PublishedCrl | None,
    now: datetime,
) -> PublishedCrl:
    entries = [
        RevokedEntry(c.serial_hex, c.revoked_at, c.revocation_reason or 0)
        for c in revoked
        if c.revoked_at is not None
    ]
    # Numbers only grow: the next after the published one, and never below the
    # millisecond clock that numbered the CRLs each process built before they were stored
    # (a relying party holding one of those must see the stored ones as newer).
    number = int(now.timestamp() * 1000)
    if previous is not None:
        number = max(number, previous.number + 1)
    this_update = now
    next_update = now + CRL_VALIDITY
    der = build_crl(
        authority, entries, this_update=this_update, next_update=next_update, crl_number=number
    )
    return PublishedCrl(level, number, this_update, next_update, mark, der)
