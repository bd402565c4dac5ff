"""orders.replaces, renewal_windows: ACME Renewal Information (RFC 9773)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 16:30:00.000000

An order may say which certificate it replaces (the certID the client sent, and the
certificate it names); the certificate records the order that replaced it once that order is
finalized (on the certificate: orders are pruned, the mark must last the certificate's life).
An operator may set a certificate's renewal window (pulled forward, with a reason); without a
row the window is computed from the certificate.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import acmefleet.store.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = acmefleet.store.types.UtcDateTime(timezone=True)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaces", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("replaces_certificate", sa.String(length=64), nullable=True))
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaced_by", sa.String(length=64), nullable=True))
    op.create_table(
        "renewal_windows",
        sa.Column("certificate_id", sa.String(length=64), nullable=False),
        sa.Column("window_start", when, nullable=False),
        sa.Column("window_end", when, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("requested_at", when, nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_renewal_windows_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_renewal_windows")),
    )


def downgrade() -> None:
    op.drop_table("renewal_windows")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_column("replaced_by")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("replaces_certificate")
        batch_op.drop_column("replaces")
