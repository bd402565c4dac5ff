"""domains: the scope of a console validation

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00

Adds ``org_domains.validation_scope``: what a domain's console validation covers on public
endpoints. ``exact`` is that name only (no wildcard, no name below it); ``subdomains`` is the
name, the names below it and wildcards under it. Null when the domain holds no validation.

Existing validations (every row with a ``validation_method``, expired ones included):

* ``http-01`` becomes ``exact``. The check fetched one URL on one host, which proves control
  of that FQDN and nothing else (CA/B BR 3.2.2.4.18/19; since ballot SC45 such a validation
  may neither issue a wildcard nor serve as the Authorization Domain Name of names below it).
  Until now these rows wrongly spared the whole subtree their challenge; from here on, a
  wildcard under such a domain is refused and a name below it gets an http-01 challenge.
* ``manual`` becomes ``subdomains``. A manual validation is no BR method: it is an
  administrator's attestation, recorded with its justification in the audit log, and it was
  given when the console documented that a validated domain covers "its subdomains and
  wildcards" (``domain add --validated``: "public orders then need no challenge"). The
  administrator vouched for the subtree; narrowing it behind their back would silently break
  the renewals of wildcard and subdomain certificates they approved, while withdrawing or
  narrowing an attestation is one command (``domain validate ID --manual --scope exact``).
  New manual validations default to ``exact`` and must ask for ``subdomains`` explicitly.
* any other method (none is written by this version) becomes ``exact``, the narrower one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("org_domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("validation_scope", sa.String(length=16), nullable=True))
    domains = sa.table(
        "org_domains",
        sa.column("validation_method", sa.String),
        sa.column("validation_scope", sa.String),
    )
    op.execute(
        domains.update()
        .where(domains.c.validation_method == "manual")
        .values(validation_scope="subdomains")
    )
    op.execute(
        domains.update()
        .where(
            domains.c.validation_method.is_not(None),
            domains.c.validation_method != "manual",
        )
        .values(validation_scope="exact")
    )


def downgrade() -> None:
    with op.batch_alter_table("org_domains", schema=None) as batch_op:
        batch_op.drop_column("validation_scope")
