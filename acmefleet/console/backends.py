"""The console operations the CLI needs: one protocol, two implementations.

* :class:`LocalBackend` works on a data directory through the service layer, all of a command
  in one database transaction (committed when the command succeeds, rolled back otherwise);
* ``acmefleet.console.client.RemoteBackend`` calls the REST API of a running server.

Both return the JSON shapes of :mod:`acmefleet.console.views` (what the API answers), so the
CLI prints the same thing in either mode. Organisations are named by ``ref``: their exact name,
or else their numeric id. Token management exists only here (it needs the database).
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from acmefleet.ca.errors import CaError
from acmefleet.clock import Clock, SystemClock
from acmefleet.config import ConfigError, ServerConfig, load_config
from acmefleet.console import (
    credentials,
    delegations,
    domain_checks,
    inventory,
    organisations,
    tokens,
    views,
)
from acmefleet.console.errors import ConsoleError, NotFound
from acmefleet.models import Organization
from acmefleet.server.datadir import DataDirError, require_initialised
from acmefleet.store import accounts as account_store
from acmefleet.store import audit as audit_store
from acmefleet.store import eab as eab_store
from acmefleet.store import orgs as org_store
from acmefleet.store import tokens as token_store
from acmefleet.store.engine import Database, open_database
from acmefleet.store.migrate import upgrade

JSON = dict[str, Any]

# What a local command may raise that is the administrator's to fix (reported in one line).
LOCAL_ERRORS: tuple[type[Exception], ...] = (
    ConsoleError,
    DataDirError,
    ConfigError,
    CaError,
    OSError,
    SQLAlchemyError,
)


class Backend(Protocol):
    """What the admin CLI does, whichever side of the network the database is on."""

    @property
    def ca_bundle(self) -> str | None:
        """The CA bundle ACME clients of this server should trust, if known."""
        ...

    def list_orgs(self) -> list[JSON]: ...
    def create_org(self, name: str) -> JSON: ...
    def get_org(self, ref: str) -> JSON: ...
    def set_org_status(self, ref: str, status: Literal["active", "disabled"]) -> JSON: ...

    def list_domains(self, org: str) -> list[JSON]: ...
    def add_domain(
        self, org: str, name: str, *, validated: bool, justification: str | None, days: int
    ) -> JSON: ...
    def get_domain(self, domain_id: int) -> JSON: ...
    def remove_domain(self, domain_id: int) -> JSON: ...
    def validate_manually(self, domain_id: int, *, justification: str, days: int) -> JSON: ...
    def start_http01(self, domain_id: int) -> JSON: ...
    def check_domain(self, domain_id: int) -> JSON: ...
    def unvalidate(self, domain_id: int) -> JSON: ...
    def delegate(self, domain_id: int, *, account_id: str | None, eab_kid: str | None) -> JSON: ...
    def list_delegations(self, domain_id: int) -> list[JSON]: ...
    def undelegate(self, delegation_id: int) -> None: ...

    def list_endpoints(self) -> list[JSON]: ...
    def mint_eab(self, org: str, endpoint: str, *, days: float | None) -> JSON: ...
    def list_eab(self) -> list[JSON]: ...
    def get_eab(self, kid: str) -> JSON: ...
    def revoke_eab(self, kid: str) -> JSON: ...

    def list_accounts(self) -> list[JSON]: ...
    def get_account(self, account_id: str) -> JSON: ...
    def deactivate_account(self, account_id: str) -> JSON: ...
    def list_certificates(
        self,
        *,
        org: str | None = None,
        endpoint: str | None = None,
        name: str | None = None,
        expiring_within_days: int | None = None,
        revoked: bool | None = None,
    ) -> list[JSON]: ...
    def get_certificate(self, cert_id: str) -> JSON: ...
    def certificate_pem(self, cert_id: str) -> str: ...
    def revoke_certificate(self, cert_id: str, *, reason: int) -> JSON: ...

    def audit(self, limit: int) -> list[JSON]: ...


def _time(value: datetime | None) -> str | None:
    """As :mod:`views` writes times."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def token_view(record: token_store.TokenRecord) -> JSON:
    """A console token, never its secret (only a hash of it is stored anyway)."""
    return {
        "id": record.id,
        "name": record.name,
        "role": record.role,
        "created": _time(record.created_at),
        "created_by": record.created_by,
        "revoked": _time(record.revoked_at),
    }


class LocalBackend:
    """The console operations on a data directory. Use as a context manager: one command."""

    def __init__(self, data_dir: Path, *, actor: str, clock: Clock | None = None) -> None:
        self._root = data_dir
        self._actor = actor
        self._clock = clock or SystemClock()
        self._stack = ExitStack()
        self._database: Database | None = None
        self._config: ServerConfig | None = None
        self._bundle: str | None = None
        self._tx: Connection | None = None

    def __enter__(self) -> Self:
        data = require_initialised(self._root)
        self._config = load_config(data.root)
        self._bundle = str(data.ca_bundle.resolve())
        database = open_database(data.database_url())
        self._stack.callback(database.dispose)
        try:
            upgrade(database)
        except BaseException:
            self._stack.close()
            raise
        self._database = database
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
    def config(self) -> ServerConfig:
        if self._config is None:
            raise RuntimeError("use LocalBackend as a context manager")
        return self._config

    def _db(self) -> Database:
        if self._database is None:
            raise RuntimeError("use LocalBackend as a context manager")
        return self._database

    def _conn(self) -> Connection:
        """The command's write transaction, begun on first use, ended by ``__exit__``."""
        if self._tx is None:
            self._tx = self._stack.enter_context(self._db().write())
        return self._tx

    def _own_transactions(self) -> Database:
        """For the http-01 steps, which run their own transactions (network I/O between)."""
        if self._tx is not None:
            raise RuntimeError("an http-01 step cannot share the command's transaction")
        return self._db()

    def _now(self) -> datetime:
        return self._clock.now()

    def _org(self, ref: str) -> Organization:
        conn = self._conn()
        found = org_store.find_org(conn, ref)
        if found is None and ref.strip().isdigit() and 0 < int(ref) < 2**63:
            found = org_store.get_org(conn, int(ref))
        if found is None:
            raise NotFound(f"no organisation {ref!r}")
        return found

    # -- organisations ---------------------------------------------------------------------

    def list_orgs(self) -> list[JSON]:
        return [views.organisation(o) for o in org_store.list_orgs(self._conn())]

    def create_org(self, name: str) -> JSON:
        created = organisations.create(self._conn(), name, actor=self._actor, now=self._now())
        return views.organisation(created)

    def get_org(self, ref: str) -> JSON:
        return views.organisation(self._org(ref))

    def set_org_status(self, ref: str, status: Literal["active", "disabled"]) -> JSON:
        org = organisations.set_status(
            self._conn(), self._org(ref).id, status, actor=self._actor, now=self._now()
        )
        return views.organisation(org)

    # -- domains ---------------------------------------------------------------------------

    def list_domains(self, org: str) -> list[JSON]:
        now = self._now()
        return [
            views.domain(d, now) for d in org_store.list_domains(self._conn(), self._org(org).id)
        ]

    def add_domain(
        self, org: str, name: str, *, validated: bool, justification: str | None, days: int
    ) -> JSON:
        now = self._now()
        added = organisations.add_domain(
            self._conn(),
            self._org(org).name,
            name,
            validated=validated,
            actor=self._actor,
            now=now,
            justification=justification,
            lifetime=timedelta(days=days),
        )
        return views.domain(added, now)

    def get_domain(self, domain_id: int) -> JSON:
        return views.domain(organisations.get_domain(self._conn(), domain_id), self._now())

    def remove_domain(self, domain_id: int) -> JSON:
        found = self.get_domain(domain_id)
        organisations.remove_domain(self._conn(), domain_id, actor=self._actor, now=self._now())
        return found

    def validate_manually(self, domain_id: int, *, justification: str, days: int) -> JSON:
        now = self._now()
        done = organisations.validate_manually(
            self._conn(),
            domain_id,
            justification=justification,
            actor=self._actor,
            now=now,
            lifetime=timedelta(days=days),
        )
        return views.domain(done, now)

    def start_http01(self, domain_id: int) -> JSON:
        pending = domain_checks.start(
            self._own_transactions(),
            self._clock,
            domain_id,
            http01_port=self.config.validation.http01_port,
            actor=self._actor,
        )
        return {
            "domain": pending.domain,
            "method": "http-01",
            "token": pending.token,
            "url": pending.url,
            "expected_content": pending.expected_content,
        }

    def check_domain(self, domain_id: int) -> JSON:
        from acmefleet.server.build import build_validators

        database = self._own_transactions()
        validator = build_validators(self.config)["http-01"]
        asyncio.run(
            domain_checks.check(database, self._clock, validator, domain_id, actor=self._actor)
        )
        with database.read() as conn:
            return views.domain(organisations.get_domain(conn, domain_id), self._now())

    def unvalidate(self, domain_id: int) -> JSON:
        now = self._now()
        done = organisations.unvalidate(self._conn(), domain_id, actor=self._actor, now=now)
        return views.domain(done, now)

    def delegate(self, domain_id: int, *, account_id: str | None, eab_kid: str | None) -> JSON:
        made = delegations.delegate(
            self._conn(),
            domain_id,
            account_id=account_id,
            eab_kid=eab_kid,
            actor=self._actor,
            now=self._now(),
        )
        return views.delegation(made)

    def list_delegations(self, domain_id: int) -> list[JSON]:
        return [views.delegation(d) for d in delegations.list_for_domain(self._conn(), domain_id)]

    def undelegate(self, delegation_id: int) -> None:
        delegations.remove(self._conn(), delegation_id, actor=self._actor, now=self._now())

    # -- endpoints, EAB credentials --------------------------------------------------------

    def list_endpoints(self) -> list[JSON]:
        from acmefleet.server.build import build_profiles

        descriptions = {name: p.description for name, p in build_profiles(self.config).items()}
        return [views.endpoint(self.config, name, descriptions) for name in self.config.endpoints]

    def mint_eab(self, org: str, endpoint: str, *, days: float | None) -> JSON:
        minted = credentials.mint(
            self._conn(),
            self.config,
            org_name=self._org(org).name,
            endpoint=endpoint,
            actor=self._actor,
            now=self._now(),
            lifetime=timedelta(days=days) if days else None,
        )
        return {
            "kid": minted.kid,
            "hmac_key": minted.hmac_key,
            "endpoint": minted.endpoint,
            "directory": minted.directory,
            "expires": _time(minted.expires_at),
        }

    def _org_names(self) -> dict[int, str]:
        return {o.id: o.name for o in org_store.list_orgs(self._conn())}

    def list_eab(self) -> list[JSON]:
        now, names = self._now(), self._org_names()
        return [
            views.credential(c, now, names.get(c.org_id))
            for c in credentials.list_credentials(self._conn())
        ]

    def get_eab(self, kid: str) -> JSON:
        found = eab_store.get_credential(self._conn(), kid)
        if found is None:
            raise NotFound(f"no EAB credential {kid!r}")
        return views.credential(found, self._now(), self._org_names().get(found.org_id))

    def revoke_eab(self, kid: str) -> JSON:
        credentials.revoke(self._conn(), kid, actor=self._actor, now=self._now())
        return self.get_eab(kid)

    # -- accounts, certificates, audit -----------------------------------------------------

    def list_accounts(self) -> list[JSON]:
        return [views.account(a) for a in account_store.list_accounts(self._conn())]

    def get_account(self, account_id: str) -> JSON:
        return views.account(inventory.get_account(self._conn(), account_id))

    def deactivate_account(self, account_id: str) -> JSON:
        done = inventory.deactivate_account(
            self._conn(), account_id, actor=self._actor, now=self._now()
        )
        return views.account(done)

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
        flt = inventory.CertificateFilter(org_id, endpoint, name, expiring_within_days, revoked)
        now = self._now()
        return [
            views.certificate(c, now) for c in inventory.list_certificates(self._conn(), flt, now)
        ]

    def get_certificate(self, cert_id: str) -> JSON:
        return views.certificate(inventory.get_certificate(self._conn(), cert_id), self._now())

    def certificate_pem(self, cert_id: str) -> str:
        return inventory.get_certificate(self._conn(), cert_id).chain_pem

    def revoke_certificate(self, cert_id: str, *, reason: int) -> JSON:
        """Revoked in the database; a running server's CRL shows it within its cache time."""
        now = self._now()
        cert = inventory.revoke_certificate(
            self._conn(), cert_id, reason=reason, actor=self._actor, now=now
        )
        return views.certificate(cert, now)

    def audit(self, limit: int) -> list[JSON]:
        return [views.audit_event(e) for e in audit_store.list_events(self._conn(), limit)]

    # -- console tokens (local only: the API does not manage them) -------------------------

    def create_token(self, name: str, role: str) -> tuple[str, JSON]:
        """The token string (its only appearance) and its listing."""
        secret, principal = tokens.create(
            self._conn(), name=name, role=role, actor=self._actor, now=self._now()
        )
        record = token_store.get_token(self._conn(), principal.token_id)
        assert record is not None
        return secret, token_view(record)

    def list_tokens(self) -> list[JSON]:
        return [token_view(t) for t in token_store.list_tokens(self._conn())]

    def revoke_token(self, token_id: str) -> JSON:
        tokens.revoke(self._conn(), token_id, actor=self._actor, now=self._now())
        record = token_store.get_token(self._conn(), token_id)
        assert record is not None
        return token_view(record)


if TYPE_CHECKING:

    def _conforms(local: LocalBackend) -> Backend:
        return local
