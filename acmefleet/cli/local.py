"""The admin CLI's local mode: console operations on a data directory.

All of a command runs in one database transaction, committed when the command succeeds and
rolled back otherwise. Each answer comes from :class:`ConsoleOperations`, exactly what the REST
API answers; this adapter only resolves organisation references and owns the transaction.
Token management exists only here (it needs the database; the API does not offer it).
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from acmefleet.ca.errors import CaError
from acmefleet.clock import Clock, SystemClock
from acmefleet.config import ConfigError, load_config
from acmefleet.console import tokens, views
from acmefleet.console.errors import ConsoleError, NotFound
from acmefleet.console.inventory import CertificateFilter
from acmefleet.console.operations import ConsoleOperations
from acmefleet.console.renewals import Selection
from acmefleet.errors import StoreUnavailable
from acmefleet.models import Organization
from acmefleet.server.build import build_console_context
from acmefleet.server.datadir import DataDirError, require_initialised
from acmefleet.store import orgs as org_store
from acmefleet.store import tokens as token_store
from acmefleet.store.engine import Database
from acmefleet.store.migrate import schema_is_current, upgrade

JSON = dict[str, Any]

# What a local command may raise that is the administrator's to fix (reported in one line).
LOCAL_ERRORS: tuple[type[Exception], ...] = (
    ConsoleError,
    DataDirError,
    ConfigError,
    CaError,
    OSError,
    SQLAlchemyError,
    StoreUnavailable,
)
MAX_ROW_ID = 2**63 - 1


class LocalBackend:
    """The console operations on a data directory. Use as a context manager: one command."""

    def __init__(self, data_dir: Path, *, actor: str, clock: Clock | None = None) -> None:
        self._root = data_dir
        self._actor = actor
        self._clock = clock or SystemClock()
        self._stack = ExitStack()
        self._ops: ConsoleOperations | None = None
        self._bundle: str | None = None
        self._tx: Connection | None = None

    def __enter__(self) -> Self:
        data = require_initialised(self._root)
        config = load_config(data.root)
        self._bundle = str(data.ca_bundle.resolve())
        database = data.open_database()
        self._stack.callback(database.dispose)
        try:
            if database.dialect == "sqlite":
                upgrade(database)  # the one server's own file: keep it current
            elif not schema_is_current(database):
                # A shared database: migrating it under running replicas of another
                # version is the operator's decision, not a side effect of a CLI command.
                raise DataDirError(
                    "the database's schema is not this acmefleet version's: run "
                    "'acmefleet server migrate' (or use the acmefleet the replicas run)"
                )
            context = build_console_context(config, database, self._clock, data.root)
        except BaseException:
            self._stack.close()
            raise
        self._ops = ConsoleOperations(context, self._actor)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tx = None
        self._stack.__exit__(exc_type, exc, tb)  # commit (or roll back), then dispose

    # -- plumbing --------------------------------------------------------------------------

    @property
    def ca_bundle(self) -> str | None:
        return self._bundle

    @property
    def ops(self) -> ConsoleOperations:
        if self._ops is None:
            raise RuntimeError("use LocalBackend as a context manager")
        return self._ops

    def _db(self) -> Database:
        return self.ops.ctx.db

    def _conn(self) -> Connection:
        """The command's write transaction, begun on first use, ended by ``__exit__``."""
        if self._tx is None:
            self._tx = self._stack.enter_context(self._db().write())
        return self._tx

    def _own_transactions(self) -> ConsoleOperations:
        """For the http-01 steps, which run their own transactions (network I/O between)."""
        if self._tx is not None:
            raise RuntimeError("an http-01 step cannot share the command's transaction")
        return self.ops

    def _org(self, ref: str) -> Organization:
        """An organisation by exact name, or else by numeric id."""
        conn = self._conn()
        found = org_store.find_org(conn, ref)
        if found is None and ref.strip().isdigit() and 0 < int(ref) <= MAX_ROW_ID:
            found = org_store.get_org(conn, int(ref))
        if found is None:
            raise NotFound(f"no organisation {ref!r}")
        return found

    # -- organisations ---------------------------------------------------------------------

    def list_orgs(self) -> list[JSON]:
        return self.ops.list_orgs(self._conn())

    def create_org(self, name: str) -> JSON:
        return self.ops.create_org(self._conn(), name)

    def get_org(self, ref: str) -> JSON:
        return views.organisation(self._org(ref))

    def set_org_status(self, ref: str, status: Literal["active", "disabled"]) -> JSON:
        return self.ops.set_org_status(self._conn(), self._org(ref).id, status)

    # -- domains ---------------------------------------------------------------------------

    def list_domains(self, org: str) -> list[JSON]:
        return self.ops.list_domains(self._conn(), self._org(org).id)

    def add_domain(
        self,
        org: str,
        name: str,
        *,
        validated: bool,
        justification: str | None,
        days: int,
        scope: str = "exact",
    ) -> JSON:
        return self.ops.add_domain(
            self._conn(),
            self._org(org).id,
            name,
            validated=validated,
            justification=justification,
            days=days,
            scope=scope,
        )

    def get_domain(self, domain_id: int) -> JSON:
        return self.ops.get_domain(self._conn(), domain_id)

    def remove_domain(self, domain_id: int) -> JSON:
        return self.ops.remove_domain(self._conn(), domain_id)

    def validate_manually(
        self, domain_id: int, *, justification: str, days: int, scope: str = "exact"
    ) -> JSON:
        return self.ops.validate_manually(
            self._conn(), domain_id, justification=justification, days=days, scope=scope
        )

    def start_http01(self, domain_id: int) -> JSON:
        return self._own_transactions().start_http01(domain_id)

    def start_dns(self, domain_id: int) -> JSON:
        return self._own_transactions().start_dns(domain_id)

    def check_domain(self, domain_id: int) -> JSON:
        return asyncio.run(self._own_transactions().check_domain(domain_id))

    def unvalidate(self, domain_id: int) -> JSON:
        return self.ops.unvalidate(self._conn(), domain_id)

    def delegate(self, domain_id: int, *, account_id: str | None, eab_kid: str | None) -> JSON:
        return self.ops.delegate(self._conn(), domain_id, account_id=account_id, eab_kid=eab_kid)

    def list_delegations(self, domain_id: int) -> list[JSON]:
        return self.ops.list_delegations(self._conn(), domain_id)

    def undelegate(self, delegation_id: int) -> None:
        self.ops.undelegate(self._conn(), delegation_id)

    # -- endpoints, EAB credentials --------------------------------------------------------

    def list_endpoints(self) -> list[JSON]:
        return self.ops.list_endpoints()

    def mint_eab(self, org: str, endpoint: str, *, days: float | None) -> JSON:
        return self.ops.mint_eab(self._conn(), self._org(org).id, endpoint, days=days)

    def list_eab(self) -> list[JSON]:
        return self.ops.list_eab(self._conn())

    def get_eab(self, kid: str) -> JSON:
        return self.ops.get_eab(self._conn(), kid)

    def revoke_eab(self, kid: str) -> JSON:
        return self.ops.revoke_eab(self._conn(), kid)

    # -- accounts, certificates, audit -----------------------------------------------------

    def list_accounts(self) -> list[JSON]:
        return self.ops.list_accounts(self._conn())

    def get_account(self, account_id: str) -> JSON:
        return self.ops.get_account(self._conn(), account_id)

    def deactivate_account(self, account_id: str) -> JSON:
        return self.ops.deactivate_account(self._conn(), account_id)

    def list_certificates(
        self,
        *,
        org: str | None = None,
        endpoint: str | None = None,
        name: str | None = None,
        expiring_within_days: int | None = None,
        revoked: bool | None = None,
    ) -> list[JSON]:
        org_id = self._org(org).id if org is not None else None
        flt = CertificateFilter(org_id, endpoint, name, expiring_within_days, revoked)
        return self.ops.list_certificates(self._conn(), flt)

    def get_certificate(self, cert_id: str) -> JSON:
        return self.ops.get_certificate(self._conn(), cert_id)

    def certificate_pem(self, cert_id: str) -> str:
        return self.ops.certificate_pem(self._conn(), cert_id)

    def revoke_certificate(self, cert_id: str, *, reason: int) -> JSON:
        """Revoked in the database; a running server's CRL shows it within its cache time."""
        return self.ops.revoke_certificate(self._conn(), cert_id, reason=reason)

    def pull_forward_renewals(
        self,
        *,
        org: str | None = None,
        endpoint: str | None = None,
        issuer: str | None = None,
        name: str | None = None,
        serials: tuple[str, ...] = (),
        reason: str,
        within_hours: float,
    ) -> JSON:
        org_id = self._org(org).id if org is not None else None
        selection = Selection(org_id, endpoint, issuer, name, serials)
        return self.ops.pull_forward_renewals(
            self._conn(), selection, reason=reason, within=timedelta(hours=within_hours)
        )

    def audit(self, limit: int) -> list[JSON]:
        return self.ops.audit(self._conn(), limit)

    def verify_audit(self) -> JSON:
        return self.ops.verify_audit(self._conn())

    # -- console tokens (local only: the API does not manage them) -------------------------

    def create_token(self, name: str, role: str) -> tuple[str, JSON]:
        """The token string (its only appearance) and its listing."""
        conn = self._conn()
        secret, principal = tokens.create(
            conn, name=name, role=role, actor=self._actor, now=self._clock.now()
        )
        return secret, views.token(self._token(principal.token_id))

    def list_tokens(self) -> list[JSON]:
        return [views.token(t) for t in token_store.list_tokens(self._conn())]

    def revoke_token(self, token_id: str) -> JSON:
        tokens.revoke(self._conn(), token_id, actor=self._actor, now=self._clock.now())
        return views.token(self._token(token_id))

    def _token(self, token_id: str) -> token_store.TokenRecord:
        record = token_store.get_token(self._conn(), token_id)
        if record is None:
            raise NotFound(f"no console token {token_id!r}")
        return record
