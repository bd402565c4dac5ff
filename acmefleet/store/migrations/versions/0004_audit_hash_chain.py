"""audit hash chain: each event hashed with the one before it, and the chain's head

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 08:20:00

Events already in the log are chained in id order as they stand: the chain vouches for
them from this upgrade on, not for what happened to them before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from acmefleet.store.audit import GENESIS, HEAD_ID, event_hash
from acmefleet.store.types import JsonText, UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_events = sa.table(
    "audit_events",
    sa.column("id", sa.Integer),
    sa.column("at", UtcDateTime),
    sa.column("actor", sa.String),
    sa.column("action", sa.String),
    sa.column("target", sa.String),
    sa.column("source", sa.String),
    sa.column("details", JsonText),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    conn = op.get_bind()
    prev, last_id, count = GENESIS, 0, 0
    for row in conn.execute(sa.select(_events).order_by(_events.c.id)).all():
        digest = event_hash(
            prev,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            source=row.source,
            details=row.details,
        )
        conn.execute(
            sa.update(_events).where(_events.c.id == row.id).values(prev_hash=prev, hash=digest)
        )
        prev, last_id, count = digest, row.id, count + 1
    assert head is not None
    op.bulk_insert(head, [{"id": HEAD_ID, "last_id": last_id, "last_hash": prev, "length": count}])
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
