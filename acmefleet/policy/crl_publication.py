"""Each issuing CA's CRL, published once for every worker and replica (RFC 5280 §5).

A CRL is rebuilt when a revocation was committed after the published one was built (its
revocation mark differs from the database's) or when it is ``REISSUE_AFTER`` old, by
whichever process notices first: a fetch of the CRL, or any process's housekeeping round.
It is signed outside any write transaction, then replaces the published one only if that
one is still the CRL it read: two processes that raced publish one CRL per number, and the
loser serves the winner's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from acmefleet.ca.crl import RevokedEntry, build_crl
from acmefleet.ca.hierarchy import Authority
from acmefleet.clock import Clock
from acmefleet.errors import StoreUnavailable
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
log = logging.getLogger(__name__)


# A replica's clock a little fast must not make every other replica rebuild; one far
# ahead must not publish a CRL that relying parties reject as not yet valid.
CLOCK_TOLERANCE = timedelta(minutes=5)
# After the database refused a write, a process serves the published CRL this long before
# it tries again: a CRL GET must not sign and wait on a busy writer every time.
UNWRITABLE_HOLD = timedelta(seconds=60)


@dataclass(frozen=True)
class Served:
    crl: PublishedCrl
    published: bool  # this call published it
    # A newer CRL is due (a revocation, or its age) but was not published: the database
    # took no write, or ``may_publish`` was false. ``crl`` is still before its nextUpdate.
    held_back: bool = False


def is_current(crl: PublishedCrl, mark: RevocationMark, now: datetime) -> bool:
    return (
        crl.mark == mark
        and now - crl.this_update < REISSUE_AFTER
        and crl.this_update <= now + CLOCK_TOLERANCE
    )


def current_crl(
    db: Database, authority: Authority, level: str, clock: Clock, *, may_publish: bool = True
) -> Served:
    """The published CRL of ``level``'s issuing CA, first rebuilt if it is not current.

    With ``may_publish`` false (the caller's database refused a write a moment ago) a CRL
    still before its nextUpdate is served as it is. Raises StoreUnavailable only when
    nothing valid can be served."""
    found: PublishedCrl | None = None
    for _ in range(ATTEMPTS):
        now = clock.now()
        with db.read() as conn:
            # The mark first: a revocation committed between the two reads is then in the
            # list but not in the mark, which costs one more build, never a CRL missing it.
            mark = cert_store.revocation_mark(conn, level)
            found = crl_store.published(conn, level)
            if found is not None and is_current(found, mark, now):
                return Served(found, published=False)
            if found is not None and now < found.next_update and not may_publish:
                return Served(found, published=False, held_back=True)
            revoked = [RevokedEntry(*row) for row in cert_store.revoked_entries(conn, level)]
        built = _build(authority, level, mark, revoked, found, now)
        try:
            with db.write() as conn:
                if crl_store.publish(conn, built, None if found is None else found.number):
                    return Served(built, published=True)
        except StoreUnavailable:
            if found is not None and now < found.next_update:
                return Served(found, published=False, held_back=True)
            raise
    with db.read() as conn:
        newest = crl_store.published(conn, level)
    if newest is None:  # a lost race means a row exists, and rows are never deleted
        raise StoreUnavailable("the published CRL could not be read")
    return Served(newest, published=False)


def publish_stale(db: Database, authorities: dict[str, Authority], clock: Clock) -> list[str]:
    """Housekeeping: every CA's CRL made current; the levels whose CRL this call published.
    One level's failure does not keep the others from being published."""
    published = []
    for level, authority in authorities.items():
        try:
            if current_crl(db, authority, level, clock).published:
                published.append(level)
        except StoreUnavailable as unavailable:
            log.warning("the CRL of %s was not published (%s)", level, unavailable)
    return published


def _build(
    authority: Authority,
    level: str,
    mark: RevocationMark,
    revoked: list[RevokedEntry],
    previous: PublishedCrl | None,
    now: datetime,
) -> PublishedCrl:
    # Numbers only grow: the next after the published one, and never below the
    # millisecond clock that numbered the CRLs each process built before they were stored
    # (a relying party holding one of those must see the stored ones as newer).
    number = int(now.timestamp() * 1000)
    if previous is not None:
        number = max(number, previous.number + 1)
    this_update = now
    next_update = now + CRL_VALIDITY
    der = build_crl(
        authority, revoked, this_update=this_update, next_update=next_update, crl_number=number
    )
    return PublishedCrl(level, number, this_update, next_update, mark, der)
