"""upstream_renewal_windows: the upstream CA's renewal window of each relayed certificate

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 23:50:00.000000

A certificate relayed from an upstream CA is the upstream's: its renewal window is the
upstream's too (RFC 9773 pass-through). Certificates relayed before this revision are
tracked from now on, their first fetch due at once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = acmefleet.store.types.UtcDateTime(timezone=True)
    op.create_table(
        "upstream_renewal_windows",
        sa.Column("certificate_id", sa.String(length=64), nullable=False),
        sa.Column("upstream", sa.String(length=32), nullable=False),
        sa.Column("window_start", when, nullable=True),
        sa.Column("window_end", when, nullable=True),
        sa.Column("fetched_at", when, nullable=True),
        sa.Column("next_fetch_at", when, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_upstream_renewal_windows_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_upstream_renewal_windows")),
    )
    op.create_index(
        "ix_upstream_renewal_windows_next",
        "upstream_renewal_windows",
        ["next_fetch_at"],
        unique=False,
    )
    # substr(…, 10): the upstream's name after "upstream:" (ca_level of a relayed certificate)
    op.execute(
        "INSERT INTO upstream_renewal_windows "
        "(certificate_id, upstream, next_fetch_at, failures) "
        "SELECT id, substr(ca_level, 10), created_at, 0 FROM certificates "
        "WHERE ca_level LIKE 'upstream:%' AND revoked_at IS NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_upstream_renewal_windows_next", table_name="upstream_renewal_windows")
    op.drop_table("upstream_renewal_windows")
