"""challenges: when validation was asked for

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00

Adds ``challenges.processing_since``: when a challenge became ``processing``. A server that
restarts resumes such challenges; from now on only until the validator's deadline has passed
since that moment, after which the challenge is made invalid instead of being run again (a
web server that hangs every attempt could otherwise keep it processing across restarts for
ever).

Challenges already processing when this runs have no such moment on record: they get the
time of the migration, so each is resumed at most once more, for at most one deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "processing_since",
                acmefleet.store.types.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
    challenges = sa.table(
        "challenges",
        sa.column("status", sa.String),
        sa.column("processing_since", acmefleet.store.types.UtcDateTime(timezone=True)),
    )
    op.execute(
        challenges.update()
        .where(challenges.c.status == "processing")
        .values(processing_since=datetime.now(UTC))
    )


def downgrade() -> None:
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.drop_column("processing_since")
