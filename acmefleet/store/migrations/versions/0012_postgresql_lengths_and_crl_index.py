"""audit events: actor and target as unbounded text; certificates looked up by revocation

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 01:00:00.000000

SQLite never enforced a VARCHAR length, PostgreSQL does: an audit target is a domain name
(up to 253 characters) or an organisation name, and an actor carries a token's name, so
VARCHAR(200) refused legitimate console requests there. Every CRL fetch reads the
revocation mark (count and latest revocation of one CA's certificates): an index on
``(ca_level, revoked_at)`` answers it without scanning the certificates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("actor", existing_type=sa.String(length=200), type_=sa.Text())
        batch_op.alter_column("target", existing_type=sa.String(length=200), type_=sa.Text())
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index("ix_certificates_revoked", ["ca_level", "revoked_at"])


def downgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_certificates_revoked")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("target", existing_type=sa.Text(), type_=sa.String(length=200))
        batch_op.alter_column("actor", existing_type=sa.Text(), type_=sa.String(length=200))
