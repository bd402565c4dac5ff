"""console: failed sign-ins, for the login throttle

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 08:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("at", acmefleet.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_login_failures")),
    )
    with op.batch_alter_table("console_login_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_login_failures_at"), ["at"], unique=False)
        batch_op.create_index("ix_console_login_failures_source_at", ["source", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_console_login_failures_source_at")
        batch_op.drop_index(batch_op.f("ix_console_login_failures_at"))

    op.drop_table("console_login_failures")
