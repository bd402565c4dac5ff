"""Run a real acmefleet server for tests: its own data directory, loopback ports, teardown."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from acmefleet.clock import SystemClock
from acmefleet.config import load_config
from acmefleet.console import credentials, organisations
from acmefleet.server.datadir import DataDir
from acmefleet.store.engine import Database
from acmefleet.store.schema import metadata
from tests.support.procs import free_ports, terminate_group, wait_for_url

ACMEFLEET = str(Path(sys.executable).with_name("acmefleet"))
# Certificates point their CRL and issuer URLs here. pkilint refuses "localhost" in them,
# so tests publish under a public-looking name; they fetch the CRL from 127.0.0.1 directly.
PKI_HOST = "pki.example.com"
# Business rows: all but the used-nonce ledger, the rate counters (which count refused
# requests on purpose: a wrong EAB must use up one of its attempts) and the published CRLs
# (derived from the revocations, republished by any process's housekeeping round at any
# moment, whatever the request).
BUSINESS_TABLES = [
    t.name for t in metadata.sorted_tables if t.name not in ("used_nonces", "rate_counters", "crls")
]


@dataclass
class AcmefleetServer:
    data_dir: Path
    port: int
    pki_port: int
    http01_port: int
    proc: subprocess.Popen[bytes] | None = None
    minted_secrets: list[str] = field(default_factory=list)
    admin_token: str = ""

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ca_bundle(self) -> Path:
        return self.data_dir / "ca-bundle.pem"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def directory(self, endpoint: str) -> str:
        return f"{self.base_url}/acme/{endpoint}/directory"

    @contextmanager
    def db(self) -> Iterator[Database]:
        """The server's database, whichever it is (SQLite in the data dir, or PostgreSQL)."""
        database = DataDir(self.data_dir).open_database()
        try:
            yield database
        finally:
            database.dispose()

    def org(self, name: str, *domains: str, validated: bool = False) -> None:
        with self.db() as database, database.write() as conn:
            organisations.create(conn, name, actor="test", now=SystemClock().now())
            for domain in domains:
                organisations.add_domain(
                    conn, name, domain, validated=validated, actor="test", now=SystemClock().now()
                )

    def add_domain(
        self, org: str, domain: str, *, validated: bool = False, scope: str = "exact"
    ) -> None:
        """Add a domain; ``validated`` records a manual validation of ``scope``."""
        with self.db() as database, database.write() as conn:
            organisations.add_domain(
                conn,
                org,
                domain,
                validated=validated,
                scope=scope,
                actor="test",
                now=SystemClock().now(),
            )

    def mint_eab(self, org: str, endpoint: str, **kwargs: Any) -> tuple[str, str]:
        config = load_config(self.data_dir)
        with self.db() as database, database.write() as conn:
            minted = credentials.mint(
                conn,
                config,
                org_name=org,
                endpoint=endpoint,
                actor="test",
                now=SystemClock().now(),
                **kwargs,
            )
        self.minted_secrets.append(minted.hmac_key)
        return minted.kid, minted.hmac_key

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every business row (all tables but the used-nonce ledger), for no-change checks.

        All tables as of one moment: on PostgreSQL a REPEATABLE READ transaction (under
        READ COMMITTED each table's read would see the commits made before it, and a
        validation committed between two reads would show its challenge done but its
        authorization still pending); SQLite's read transaction is one snapshot already."""
        with self.db() as database:
            if database.dialect != "postgresql":
                with database.read() as conn:
                    return _rows(conn)
            with database.reader.connect() as plain:
                conn = plain.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    return _rows(conn)

    def count(self, table_name: str, **where: Any) -> int:
        table = metadata.tables[table_name]
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        with self.db() as database, database.read() as conn:
            return int(conn.execute(query).scalar_one())

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def _rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table.name: sorted(tuple(map(repr, row)) for row in conn.execute(select(table)))
        for table in metadata.sorted_tables
        if table.name in BUSINESS_TABLES
    }


def set_settings(text: str, settings: Mapping[str, object]) -> str:
    """``config.toml`` text with each ``name = value`` line of the template replaced."""
    for name, value in settings.items():
        text, found = re.subn(rf"^{re.escape(name)} = .*$", f"{name} = {value}", text, flags=re.M)
        assert found == 1, f"no setting {name!r} in the configuration template"
    return text


def configure(
    data_dir: Path,
    *,
    http01_port: int,
    extra: str = "",
    settings: Mapping[str, str] | None = None,
    limits: Mapping[str, float] | None = None,
) -> None:
    """Let validation reach test web servers on loopback (never the default); replace the
    template's ``settings`` (TOML values as text) and ``[limits]`` values.

    A closed network: names resolve through static answers, and CAA is not checked unless
    ``settings`` turn it on (``check_caa = "true"``, with ``dns_resolvers`` a test DNS
    server), so no test asks a resolver outside the machine."""
    path = data_dir / "config.toml"
    chosen = {"check_caa": "false", **(settings or {}), **(limits or {})}
    text = set_settings(path.read_text(), chosen)
    text = re.sub(r"^http01_port = \d+", f"http01_port = {http01_port}", text, flags=re.M)
    text = text.replace("allow_private_addresses = false", "allow_private_addresses = true")
    text = text.replace("[validation.hosts]\n", '[validation.hosts]\n"*" = "127.0.0.1"\n')
    path.write_text(text + extra)


@contextmanager
def running_acmefleet(
    workdir: Path,
    *,
    workers: int = 1,
    extra_config: str = "",
    settings: Mapping[str, str] | None = None,
    env: dict[str, str] | None = None,
    limits: dict[str, float] | None = None,
    database_url: str | None = None,
    pki_host: str = PKI_HOST,
) -> Iterator[AcmefleetServer]:
    """``database_url``: keep the state in that PostgreSQL database (``server init
    --database-url``) instead of SQLite in the data directory. ``pki_host``: the host of
    ``pki_base_url`` (127.0.0.1 for a test that fetches what certificates point at)."""
    port, pki_port, http01_port = free_ports(3)
    data_dir = workdir / "acmefleet-data"
    database = ["--database-url", database_url] if database_url else []
    subprocess.run(
        [
            ACMEFLEET,
            "server",
            "init",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--pki-listen",
            f"127.0.0.1:{pki_port}",
            "--pki-base-url",
            f"http://{pki_host}:{pki_port}",
            "--admin-token-file",
            str(workdir / "admin-token"),
            *database,
        ],
        check=True,
        capture_output=True,
    )
    configure(
        data_dir, http01_port=http01_port, extra=extra_config, settings=settings, limits=limits
    )
    server = AcmefleetServer(data_dir, port, pki_port, http01_port)
    server.admin_token = (workdir / "admin-token").read_text().strip()
    server.minted_secrets.append(server.admin_token)
    with _serving(server, workers=workers, env=env):
        yield server


@contextmanager
def _serving(
    server: AcmefleetServer,
    *,
    workers: int,
    env: dict[str, str] | None = None,
    listen: list[str] | None = None,
) -> Iterator[None]:
    with server.log_path.open("wb") as log:
        server.proc = subprocess.Popen(
            [
                ACMEFLEET,
                "server",
                "run",
                "--data-dir",
                str(server.data_dir),
                "--workers",
                str(workers),
                "--log-level",
                "debug",
                *(listen or []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        try:
            url = f"https://localhost:{server.port}/acme/private/directory"
            wait_for_url(url, server.ca_bundle, server.proc)
            yield
        finally:
            terminate_group(server.proc)


@contextmanager
def running_replica(
    first: AcmefleetServer, workdir: Path, *, workers: int = 1
) -> Iterator[AcmefleetServer]:
    """Another replica of ``first`` (which must be on PostgreSQL): a copy of its data
    directory (configuration, CA keys, TLS key), serving on ports of its own and sharing
    nothing else but the database. Its configuration keeps ``first``'s base URL, as replicas
    behind one load balancer do, so URLs in its answers name that address."""
    port, pki_port = free_ports(2)
    data_dir = workdir / "acmefleet-replica-data"
    shutil.copytree(first.data_dir, data_dir, symlinks=True)
    replica = AcmefleetServer(data_dir, port, pki_port, first.http01_port)
    replica.admin_token = first.admin_token
    listen = ["--listen", f"127.0.0.1:{port}", "--pki-listen", f"127.0.0.1:{pki_port}"]
    with _serving(replica, workers=workers, listen=listen):
        yield replica


@contextmanager
def checked_acmefleet(workdir: Path, **kwargs: Any) -> Iterator[AcmefleetServer]:
    """``running_acmefleet`` with organisation ``acme`` owning example.com (not validated)
    and 10.20.0.0/16; afterwards its log must hold no traceback and no EAB HMAC key."""
    with running_acmefleet(workdir, **kwargs) as server:
        server.org("acme", "example.com", "10.20.0.0/16")
        yield server
        log = server.log_text()
        leaked = [secret for secret in server.minted_secrets if secret in log]
    assert "Traceback" not in log, f"the server logged an unhandled error:\n{log[-4000:]}"
    assert not leaked, "an EAB HMAC key appeared in the server log"
