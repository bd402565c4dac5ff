"""The Alembic migrations: they build exactly ``store.schema``, and carry old rows over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from acmefleet.store import orders as order_store
from acmefleet.store import orgs as org_store
from acmefleet.store.engine import open_database, sqlite_url
from acmefleet.store.migrate import upgrade
from acmefleet.store.schema import metadata, organizations
from acmefleet.store.types import UtcDateTime
from tests.unit import rows
from tests.unit.rows import NOW

# org_domains as revision 0002 left it (no validation_scope yet).
DOMAINS_0002 = sa.table(
    "org_domains",
    sa.column("org_id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("kind", sa.String),
    sa.column("validated_at", UtcDateTime),
    sa.column("validated_until", UtcDateTime),
    sa.column("validation_method", sa.String),
    sa.column("validated_by", sa.String),
    sa.column("created_at", UtcDateTime),
)


def test_the_migrations_build_the_schema(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path))
    try:
        upgrade(db)
        with db.writer.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        db.dispose()
    assert differences == []


def test_existing_validations_get_their_scope(tmp_path: Path) -> None:
    """http-01 proved one name: exact. A manual one was an administrator's attestation of the
    subtree, as the console documented it then: subdomains (see migration 0006)."""
    db = open_database(sqlite_url(tmp_path))
    try:
        upgrade(db, "0002")
        with db.write() as conn:
            conn.execute(sa.insert(organizations).values(id=1, name="old", created_at=NOW))
            day = timedelta(days=1)
            for name, method, until in (
                ("checked.example", "http-01", NOW + day),
                ("vouched.example", "manual", NOW + day),
                ("lapsed.example", "manual", NOW - day),
                ("lapsed-check.example", "http-01", NOW - day),
                ("plain.example", None, None),
            ):
                conn.execute(
                    sa.insert(DOMAINS_0002).values(
                        org_id=1,
                        name=name,
                        kind="dns",
                        validated_at=NOW - 2 * day if method else None,
                        validated_until=until,
                        validation_method=method,
                        validated_by="admin" if method else None,
                        created_at=NOW - 3 * day,
                    )
                )
        upgrade(db)
        with db.read() as conn:
            scopes = {d.name: d.validation_scope for d in org_store.list_domains(conn, 1)}
    finally:
        db.dispose()
    assert scopes == {
        "checked.example": "exact",
        "vouched.example": "subdomains",
        "lapsed.example": "subdomains",
        "lapsed-check.example": "exact",
        "plain.example": None,
    }


def test_challenges_already_processing_get_a_start(tmp_path: Path) -> None:
    """Migration 0007 stamps them with its own time: one more deadline, not for ever."""
    db = open_database(sqlite_url(tmp_path))
    try:
        upgrade(db, "0006")
        with db.write() as conn:
            authz = rows.authorization(conn, rows.account(conn))
            other = rows.authorization(conn, rows.account(conn))
            [busy] = authz.challenges
            old_challenges = sa.table("challenges", sa.column("id"), sa.column("status"))
            conn.execute(
                sa.update(old_challenges)
                .where(old_challenges.c.id == busy.id)
                .values(status="processing")
            )
        before = datetime.now(UTC)
        upgrade(db)
        with db.read() as conn:
            stamped = order_store.get_challenge(conn, busy.id)
            untouched = order_store.get_challenge(conn, other.challenges[0].id)
    finally:
        db.dispose()
    assert stamped is not None and stamped.processing_since is not None
    assert before - timedelta(seconds=1) <= stamped.processing_since <= datetime.now(UTC)
    assert untouched is not None and untouched.processing_since is None
