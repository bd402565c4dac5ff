"""challenges: the validation queue's leases; authorizations looked up by name

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 18:30:00.000000

A ``processing`` challenge is a queued validation shared by every server process through the
database: ``lease_owner``/``lease_until`` say which process runs it and until when its claim
holds. Challenges already processing get no lease, so the first process to look claims them
(each still only within its deadline counted from ``processing_since``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "lease_until", acmefleet.store.types.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index("ix_challenges_status_lease", ["status", "lease_until"])
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_authorizations_identifier", ["identifier_value", "identifier_type"]
        )


def downgrade() -> None:
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.drop_index("ix_authorizations_identifier")
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_challenges_status_lease")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")
