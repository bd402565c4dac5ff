"""domains: the method of a console check in progress (http-01 or dns)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 18:30:00

Adds ``org_domains.challenge_method``: the console now starts two kinds of domain control
check, http-01 (a token the domain's web server serves; validates the name only) and dns (a
Random Value in a TXT record at ``_acmefleet-challenge.<domain>``, CA/B BR 3.2.2.4.7;
validates the name, its subdomains and wildcards). A check in progress keeps its method so
that ``check`` looks in the right place and applies the right expiry (7 days for a token,
30 days for a Random Value).

Existing rows keep a null method: a check started before this revision was an http-01 one,
and is read as such. Completed validations (``validation_method``/``validation_scope``) are
not touched: manual ones keep the scope they were given.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("org_domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("challenge_method", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("org_domains", schema=None) as batch_op:
        batch_op.drop_column("challenge_method")
