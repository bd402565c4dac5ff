"""upstream_orders, upstream_revocations: what a public endpoint relays to its upstream CA

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 13:00:00.000000

One row per local order that finalize queued for the upstream CA: its CSR, the upstream
order's URL once placed, attempts and backoff, the lease of the process working it. One row
per relayed certificate revoked here whose revocation the upstream must still be told of.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = acmefleet.store.types.UtcDateTime(timezone=True)
    op.create_table(
        "upstream_orders",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("upstream", sa.String(length=32), nullable=False),
        sa.Column("csr", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("upstream_order_url", sa.Text(), nullable=True),
        sa.Column("certificate_url", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", when, nullable=False),
        sa.Column("give_up_at", when, nullable=False),
        sa.Column("last_error", acmefleet.store.types.JsonText(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", when, nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_upstream_orders_order_id_orders"),
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_upstream_orders")),
    )
    with op.batch_alter_table("upstream_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_upstream_orders_state_next", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index("ix_upstream_orders_url", ["upstream_order_url"], unique=False)
    op.create_table(
        "upstream_revocations",
        sa.Column("certificate_id", sa.String(length=64), nullable=False),
        sa.Column("upstream", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", when, nullable=False),
        sa.Column("last_error", acmefleet.store.types.JsonText(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", when, nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_upstream_revocations_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_upstream_revocations")),
    )
    with op.batch_alter_table("upstream_revocations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_upstream_revocations_state_next", ["state", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("upstream_revocations", schema=None) as batch_op:
        batch_op.drop_index("ix_upstream_revocations_state_next")
    op.drop_table("upstream_revocations")
    with op.batch_alter_table("upstream_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_upstream_orders_url")
        batch_op.drop_index("ix_upstream_orders_state_next")
    op.drop_table("upstream_orders")
