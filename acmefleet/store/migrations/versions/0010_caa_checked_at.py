"""authorizations: when CAA last allowed issuance

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 18:30:00

Adds ``authorizations.caa_checked_at``: when the CAA check (RFC 8659) last allowed issuance
for the authorization's name on a public endpoint. Finalize checks again every name whose
check is older than 8 hours (CA/B BR 3.2.2.8) or was never made. Existing authorizations get
none, so each is checked at its next finalize.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "caa_checked_at",
                acmefleet.store.types.UtcDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.drop_column("caa_checked_at")
