"""crls: the CRL of each issuing CA, published once for every worker and replica

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 20:10:00.000000

Until now each server process built its own CRL from the revoked certificates; now one CRL
per trust level is stored, replaced when a revocation is committed or on schedule, and every
process serves it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = acmefleet.store.types.UtcDateTime(timezone=True)
    op.create_table(
        "crls",
        sa.Column("ca_level", sa.String(length=32), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("this_update", when, nullable=False),
        sa.Column("next_update", when, nullable=False),
        sa.Column("revoked_count", sa.Integer(), nullable=False),
        sa.Column("latest_revocation", when, nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("ca_level", name=op.f("pk_crls")),
    )


def downgrade() -> None:
    op.drop_table("crls")
