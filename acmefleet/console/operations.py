"""Every console operation as one call that returns the JSON the REST API answers.

The REST API routes and the CLI's local mode (``acmefleet admin`` on a data directory) both
call these, so each answer is built once, by the same service functions and the same
:mod:`views`. The caller owns the transaction: an API request gives one per request, a local
CLI command one per command. The domain check steps (http-01, dns) open their own transactions
instead, since network I/O runs between them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection

from acmefleet.console import (
    credentials,
    delegations,
    domain_checks,
    inventory,
    organisations,
    renewals,
    views,
)
from acmefleet.console.context import ConsoleContext
from acmefleet.console.errors import NotFound
from acmefleet.models import Certificate
from acmefleet.store import accounts as account_store
from acmefleet.store import audit as audit_store
from acmefleet.store import eab as eab_store
from acmefleet.store import orgs as org_store

JSON = dict[str, Any]


class ConsoleOperations:
    """The console's operations on behalf of ``actor`` (audited with ``source``)."""

    def __init__(self, ctx: ConsoleContext, actor: str, source: str | None = None) -> None:
        self.ctx = ctx
        self.actor = actor
        self.source = source

    def _now(self) -> datetime:
        return self.ctx.clock.now()

    # -- organisations ---------------------------------------------------------------------

    def list_orgs(self, conn: Connection) -> list[JSON]:
        return [views.organisation(o) for o in org_store.list_orgs(conn)]

    def create_org(self, conn: Connection, name: str) -> JSON:
        org = organisations.create(
            conn, name, actor=self.actor, now=self._now(), source=self.source
        )
        return views.organisation(org)

    def get_org(self, conn: Connection, org_id: int) -> JSON:
        return views.organisation(organisations.get_by_id(conn, org_id))

    def set_org_status(
        self, conn: Connection, org_id: int, status: Literal["active", "disabled"]
    ) -> JSON:
        org = organisations.set_status(
            conn, org_id, status, actor=self.actor, now=self._now(), source=self.source
        )
        return views.organisation(org)

    # -- domains ---------------------------------------------------------------------------

    def list_domains(self, conn: Connection, org_id: int) -> list[JSON]:
        organisations.get_by_id(conn, org_id)  # 404 for an unknown organisation
        now = self._now()
        return [views.domain(d, now) for d in org_store.list_domains(conn, org_id)]

    def add_domain(
        self,
        conn: Connection,
        org_id: int,
        name: str,
        *,
        validated: bool = False,
        justification: str | None = None,
        days: int | None = None,
        scope: str = organisations.DEFAULT_MANUAL_SCOPE,
    ) -> JSON:
        org = organisations.get_by_id(conn, org_id)
        now = self._now()
        added = organisations.add_domain(
            conn,
            org.name,
            name,
            validated=validated,
            actor=self.actor,
            now=now,
            source=self.source,
            justification=justification,
            lifetime=(
                timedelta(days=days)
                if days is not None
                else organisations.DEFAULT_VALIDATION_LIFETIME
            ),
            scope=scope,
        )
        return views.domain(added, now)

    def get_domain(self, conn: Connection, domain_id: int) -> JSON:
        return views.domain(organisations.get_domain(conn, domain_id), self._now())

    def remove_domain(self, conn: Connection, domain_id: int) -> JSON:
        """The domain as it was before its removal."""
        removed = self.get_domain(conn, domain_id)
        organisations.remove_domain(
            conn, domain_id, actor=self.actor, now=self._now(), source=self.source
        )
        return removed

    def validate_manually(
        self,
        conn: Connection,
        domain_id: int,
        *,
        justification: str,
        days: int,
        scope: str = organisations.DEFAULT_MANUAL_SCOPE,
    ) -> JSON:
        """An administrator's validation: ``exact`` (the name only) unless ``subdomains``."""
        now = self._now()
        done = organisations.validate_manually(
            conn,
            domain_id,
            justification=justification,
            actor=self.actor,
            now=now,
            lifetime=timedelta(days=days),
            scope=scope,
            source=self.source,
        )
        return views.domain(done, now)

    def start_http01(self, domain_id: int) -> JSON:
        """An http-01 check begins: what the domain must serve, and where."""
        return self.start_check(domain_id, domain_checks.HTTP01)

    def start_dns(self, domain_id: int) -> JSON:
        """A DNS check (BR 3.2.2.4.7) begins: the TXT record to create, and its expiry."""
        return self.start_check(domain_id, domain_checks.DNS)

    def start_check(self, domain_id: int, method: str) -> JSON:
        pending = domain_checks.start(
            self.ctx.db,
            self.ctx.clock,
            domain_id,
            method=domain_checks.parse_method(method),
            http01_port=self.ctx.config.validation.http01_port,
            actor=self.actor,
            source=self.source,
        )
        return views.pending_check(pending)

    async def check_domain(self, domain_id: int) -> JSON:
        """Run the check in progress with the server's own validators (the ACME ones)."""
        await domain_checks.check(
            self.ctx.db,
            self.ctx.clock,
            self.ctx.validators,
            domain_id,
            actor=self.actor,
            source=self.source,
        )
        with self.ctx.db.read() as conn:
            return self.get_domain(conn, domain_id)

    def unvalidate(self, conn: Connection, domain_id: int) -> JSON:
        now = self._now()
        done = organisations.unvalidate(
            conn, domain_id, actor=self.actor, now=now, source=self.source
        )
        return views.domain(done, now)

    # -- delegations -----------------------------------------------------------------------

    def delegate(
        self, conn: Connection, domain_id: int, *, account_id: str | None, eab_kid: str | None
    ) -> JSON:
        made = delegations.delegate(
            conn,
            domain_id,
            account_id=account_id,
            eab_kid=eab_kid,
            actor=self.actor,
            now=self._now(),
            source=self.source,
        )
        return views.delegation(made)

    def list_delegations(self, conn: Connection, domain_id: int) -> list[JSON]:
        return [views.delegation(d) for d in delegations.list_for_domain(conn, domain_id)]

    def undelegate(self, conn: Connection, delegation_id: int) -> None:
        delegations.remove(
            conn, delegation_id, actor=self.actor, now=self._now(), source=self.source
        )

    # -- endpoints, EAB credentials --------------------------------------------------------

    def list_endpoints(self) -> list[JSON]:
        descriptions = dict(self.ctx.profile_descriptions)
        config = self.ctx.config
        return [views.endpoint(config, name, descriptions) for name in config.endpoints]

    def mint_eab(self, conn: Connection, org_id: int, endpoint: str, *, days: float | None) -> JSON:
        """The new credential with its HMAC key: the only answer that ever shows it."""
        org = organisations.get_by_id(conn, org_id)
        minted = credentials.mint(
            conn,
            self.ctx.config,
            org_name=org.name,
            endpoint=endpoint,
            actor=self.actor,
            now=self._now(),
            lifetime=timedelta(days=days) if days else None,
            source=self.source,
        )
        return views.minted_credential(minted)

    def list_eab(self, conn: Connection) -> list[JSON]:
        now = self._now()
        names = {o.id: o.name for o in org_store.list_orgs(conn)}
        return [
            views.credential(c, now, names.get(c.org_id))
            for c in credentials.list_credentials(conn)
        ]

    def get_eab(self, conn: Connection, kid: str) -> JSON:
        found = eab_store.get_credential(conn, kid)
        if found is None:
            raise NotFound(f"no EAB credential {kid!r}")
        org = org_store.get_org(conn, found.org_id)
        return views.credential(found, self._now(), org.name if org else None)

    def revoke_eab(self, conn: Connection, kid: str) -> JSON:
        credentials.revoke(conn, kid, actor=self.actor, now=self._now(), source=self.source)
        return self.get_eab(conn, kid)

    # -- accounts, certificates, audit -----------------------------------------------------

    def list_accounts(self, conn: Connection) -> list[JSON]:
        return [views.account(a) for a in account_store.list_accounts(conn)]

    def get_account(self, conn: Connection, account_id: str) -> JSON:
        return views.account(inventory.get_account(conn, account_id))

    def deactivate_account(self, conn: Connection, account_id: str) -> JSON:
        done = inventory.deactivate_account(
            conn, account_id, actor=self.actor, now=self._now(), source=self.source
        )
        return views.account(done)

    def list_certificates(
        self, conn: Connection, certificate_filter: inventory.CertificateFilter
    ) -> list[JSON]:
        now = self._now()
        found = inventory.list_certificates(conn, certificate_filter, now)
        shown = renewals.renewals_of(conn, found)
        return [views.certificate(c, now, shown[c.id]) for c in found]

    def get_certificate(self, conn: Connection, cert_id: str) -> JSON:
        return self._certificate(conn, inventory.get_certificate(conn, cert_id), self._now())

    @staticmethod
    def _certificate(conn: Connection, cert: Certificate, now: datetime) -> JSON:
        return views.certificate(cert, now, renewals.renewals_of(conn, [cert])[cert.id])

    def certificate_pem(self, conn: Connection, cert_id: str) -> str:
        return inventory.get_certificate(conn, cert_id).chain_pem

    def revoke_certificate(self, conn: Connection, cert_id: str, *, reason: int) -> JSON:
        """Revoked in the database; the next CRL published lists it (``policy.crl_publication``)."""
        now = self._now()
        cert = inventory.revoke_certificate(
            conn, cert_id, reason=reason, actor=self.actor, now=now, source=self.source
        )
        return self._certificate(conn, cert, now)

    def pull_forward_renewals(
        self, conn: Connection, selection: renewals.Selection, *, reason: str, within: timedelta
    ) -> JSON:
        """RFC 9773 windows [now, now + within] for the selected certificates in force."""
        done = renewals.pull_forward(
            conn,
            selection,
            reason=reason,
            within=within,
            actor=self.actor,
            now=self._now(),
            source=self.source,
        )
        return views.pulled_forward(done)

    def audit(self, conn: Connection, limit: int) -> list[JSON]:
        return [views.audit_event(e) for e in audit_store.list_events(conn, limit)]

    def verify_audit(self, conn: Connection) -> JSON:
        """Every link of the audit log's hash chain recomputed (see ``store.audit``)."""
        return views.audit_chain(audit_store.verify_chain(conn))
