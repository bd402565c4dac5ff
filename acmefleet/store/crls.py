"""The CRL each issuing CA publishes: one row per trust level, replaced by compare-and-set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from acmefleet.store.prepared import Prepared
from acmefleet.store.schema import crls

# (certificates of the CA revoked, the latest revocation time): what a CRL was built from.
RevocationMark = tuple[int, datetime | None]


@dataclass(frozen=True)
class PublishedCrl:
    ca_level: str
    number: int
    this_update: datetime
    next_update: datetime
    mark: RevocationMark
    der: bytes


# Read on every CRL fetch: prepared.
_PUBLISHED = Prepared(select(crls).where(crls.c.ca_level == bindparam("p_level")))


def published(conn: Connection, ca_level: str) -> PublishedCrl | None:
    row = _PUBLISHED.first(conn, {"p_level": ca_level})
    if row is None:
        return None
    return PublishedCrl(
        ca_level=row.ca_level,
        number=row.crl_number,
        this_update=row.this_update,
        next_update=row.next_update,
        mark=(row.revoked_count, row.latest_revocation),
        der=bytes(row.der),
    )


def publish(conn: Connection, crl: PublishedCrl, replacing: int | None) -> bool:
    """Store ``crl`` if the published one is still number ``replacing`` (None: none yet).
    False when another process published first: its CRL stands, with its number."""
    values = {
        "crl_number": crl.number,
        "this_update": crl.this_update,
        "next_update": crl.next_update,
        "revoked_count": crl.mark[0],
        "latest_revocation": crl.mark[1],
        "der": crl.der,
    }
    if replacing is None:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        first = (
            insert(crls)
            .values(ca_level=crl.ca_level, **values)
            .on_conflict_do_nothing()
            .returning(crls.c.ca_level)  # the inserted row, or none: the same on every dialect
        )
        return conn.execute(first).first() is not None
    newer = (
        update(crls)
        .where(crls.c.ca_level == crl.ca_level, crls.c.crl_number == replacing)
        .values(**values)
    )
    return conn.execute(newer).rowcount == 1
