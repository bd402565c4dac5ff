"""delegation restrictions: a delegated account stays restricted when its delegations go

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 08:10:00

Before this, an account (or EAB credential) whose last delegation was removed could order
under every domain of its organisation again. Every account and credential that holds a
delegation today is recorded as restricted, so the upgrade itself widens nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delegation_restrictions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("eab_kid", sa.String(length=64), nullable=True),
        sa.Column("created_at", acmefleet.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegation_restrictions")),
        sa.UniqueConstraint("account_id", name=op.f("uq_delegation_restrictions_account_id")),
        sa.UniqueConstraint("eab_kid", name=op.f("uq_delegation_restrictions_eab_kid")),
    )
    op.execute(
        "INSERT INTO delegation_restrictions (account_id, created_at) "
        "SELECT account_id, MIN(created_at) FROM domain_delegations "
        "WHERE account_id IS NOT NULL GROUP BY account_id"
    )
    op.execute(
        "INSERT INTO delegation_restrictions (eab_kid, created_at) "
        "SELECT eab_kid, MIN(created_at) FROM domain_delegations "
        "WHERE eab_kid IS NOT NULL GROUP BY eab_kid"
    )


def downgrade() -> None:
    op.drop_table("delegation_restrictions")
