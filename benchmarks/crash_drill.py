"""Crash drill: kill -9 the server at random points of a load run, restart it, check invariants.

    PYTHONPATH=. .venv/bin/python benchmarks/crash_drill.py [--rounds 20] [--clients 2]
        [--public-clients 2] [--min-delay 0.3] [--max-delay 3] [--seed N]
        [--validation-timeout 8] [--init-kills 5] [--workdir DIR] [--json FILE]
        [--database sqlite|postgresql] [--replicas 2] [--database-restarts N]
        [--database-down 1.0]

One data directory for the whole drill (``server init`` on loopback ports, every name mapped
to 127.0.0.1 for http-01, rate limits off). Each round:

1. the server runs with ``--workers 2``; client threads (the project's test client) do full
   issuances: a fresh EAB minted through the console REST API (as an admin would), then
   newAccount, newOrder, finalize, download on the private endpoint, and http-01 orders on
   the public endpoint against a local responder that answers after a random delay (some
   answers wrong on purpose, so orders also end ``invalid``). Everything a client was told
   is journaled: accounts, order URLs, certificates (URL, serial, PEM);
2. after a random delay (uniform ``--min-delay``..``--max-delay`` s) the server's whole
   process group gets SIGKILL; the database and its WAL as the kill left them are copied
   aside and read (integrity, challenges left processing, orders left processing);
3. the server is started again on the same data directory (SQLite recovers the WAL) and
   must answer /health;
4. the invariants are checked; each is one named check per round, passed or failed
   (``CHECKS`` lists them). Orders left ``ready`` or ``pending`` are driven to the end now,
   as their client would, so nothing stays half done; the next round's load runs on the
   restarted server.

With ``--database postgresql`` a private PostgreSQL cluster (``tests/support/postgres.py``)
holds the state and ``--replicas`` servers (default 2, each with ``--workers``) share it, the
first made by ``server init --database-url``, the others from copies of its data directory on
ports of their own. Each client sends every request to the next replica in turn, and retries
as a client behind a balancer would: a replica that refuses the connection or cuts a request
off, the next one (the request is sent again: a newAccount repeated answers 200, a finalize
repeated 403 orderNotReady and the client then polls its order); a 503 with Retry-After
(the database away), the same request after that delay; a badNonce, signed again; all within
``RETRY_DEADLINE``. A round is one of:

- ``replica_kill``: after the random delay one replica's whole process group gets SIGKILL
  (each replica in turn) while the load goes on against the others. The database is read
  at once (orders left processing, EAB bindings, order ⇔ certificate rows, audit events);
  then, the killed replica still down, every challenge that was ``processing`` must end
  valid or invalid within its deadline: the survivors take the dead replica's validation
  leases over. The load is then stopped (each client finishes the order it is on: it must
  complete or fail cleanly), the killed replica is started again and must answer /health;
- ``database_restart`` (``--database-restarts`` of the rounds, spread evenly, every third
  one or so): PostgreSQL is stopped (fast shutdown: every session cut), left down
  ``--database-down`` s and started again during the load; every replica must answer
  /health again by itself (none is restarted), and the same checks follow.

The checks read the database through SQLAlchemy on the PostgreSQL URL (one REPEATABLE READ
snapshot per check); SQLite's own checks of its file (``integrity_check``, the WAL copy)
do not apply and are listed as skipped in the summary (``checks_skipped``), beside the
checks each kind of round ran (``checks_ran``). The data-directory checks (no half-written
file) run on every replica's data directory.

Before the rounds, ``--init-kills`` times, ``server init`` itself is killed at a random point
of its run on an existing empty data dir (SQLite, whatever ``--database``); the next
``server init`` there must succeed and leave a complete data dir with nothing inside or
beside it (``kill_inits``).

A per-round table and a JSON summary are printed (``--json`` also writes it). Exit status:
0 when every check of every round passed, 1 on any violation, 2 when the drill could not run.
Everything listens on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from sqlalchemy import Connection, func, select

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from acmefleet.config import load_config  # noqa: E402
from acmefleet.store.engine import SQLITE_FILE, open_database  # noqa: E402
from acmefleet.store.schema import (  # noqa: E402
    accounts,
    audit_events,
    certificates,
    challenges,
    eab_credentials,
    orders,
    organizations,
)
from tests.support.acme_client import (  # noqa: E402
    AccountKey,
    AcmeClient,
    make_csr,
    retry_after_seconds,
)
from tests.support.acme_client import AcmeError as ClientError  # noqa: E402
from tests.support.acmefleet_server import ACMEFLEET, AcmefleetServer, configure  # noqa: E402
from tests.support.console import Http01Responder  # noqa: E402
from tests.support.postgres import PostgresServer, postgres_available  # noqa: E402
from tests.support.procs import die_with_parent, free_ports, terminate_group  # noqa: E402

ORG = "drill"
PRIVATE_DOMAIN = "drill.example.com"  # the private endpoint issues under it at once
PUBLIC_DOMAIN = "drill.example.org"  # not validated in the console: http-01 on public
ORDERS_PER_ACCOUNT = 3
BAD_ANSWER_SHARE = 0.25  # public orders answered wrongly on purpose: they must end invalid
RESPONDER_DELAY = 0.4  # the responder waits up to this long: challenges stay processing a while
# The validator's deadline is counted from the challenge's processing_since; policy adds
# one second of grace (policy.challenges.GRACE); the drill allows this much on top.
DEADLINE_SLACK = timedelta(seconds=3)
REQUEST_TIMEOUT = 15.0
JOIN_TIMEOUT = 30.0
# On PostgreSQL the load is stopped, not killed: each client finishes the order it is on,
# which may wait out a database restart's Retry-After first.
DRAIN_TIMEOUT = 90.0
# A request a replica refused, cut off or answered 503 is sent again (to the next replica,
# or after Retry-After) until this many seconds have passed since it was first sent.
RETRY_DEADLINE = 60.0
RETRY_AFTER_CAP = 10.0  # a Retry-After longer than this is waited for this long
BAD_NONCE_RETRIES = 3  # a request repeated after a cut may find its nonce used
DB_FILES = (SQLITE_FILE, f"{SQLITE_FILE}-wal", f"{SQLITE_FILE}-shm")
# Limits far above what a drill reaches: a refusal would end a client's run.
NO_LIMITS = {
    "new_accounts_per_address": '"off"',
    "new_orders_per_account": '"off"',
    "new_orders_per_organisation": '"off"',
    "failed_validations_per_account": '"off"',
    "pending_authorizations_per_account": '"off"',
}
# Every check, once per round, in the order they run.
CHECKS = (
    "process_group_dead",  # SIGKILL left no process of the server's group running
    "load_responses_ok",  # before the kill, every answer was the expected one (no 5xx)
    "crash_state_integrity",  # the database+WAL the kill left pass integrity/foreign keys
    "crash_state_no_processing_order",  # no order committed as processing (one transaction)
    "crash_state_consistent",  # EAB bindings, order ⇔ certificate rows, audit events, as left
    "crash_state_files_whole",  # no half-written file in the data directory after the kill
    "server_restarts",  # the server starts on the same data dir and answers /health
    "challenges_resolved_in_deadline",  # challenges left processing end valid/invalid in time
    "accounts_acknowledged_exist",  # every account a client got a 201 for is stored
    "eab_interrupted_resumable",  # newAccount cut by the kill can be repeated: 201 or 200
    "eab_bindings_consistent",  # none consumed but unbound, every account bound exactly once
    "orders_acknowledged_exist",  # every order a client got a URL for is stored
    "orders_none_processing",  # no order processing after the restart
    "orders_valid_have_certificate",  # valid ⇔ one certificate row for the order
    "orders_ready_finalize",  # an order left ready is finalized now, and downloadable
    "orders_pending_complete",  # an order left pending is completed now (valid or invalid)
    "orders_invalid_have_error",  # an invalid order carries its error
    "certificates_in_db",  # every certificate a client received: its row, the same PEM
    "certificates_downloadable",  # POST-as-GET by the owner returns the identical PEM
    "audit_chain_verifies",  # acmefleet admin audit verify exits 0
    "audit_covers_commits",  # a certificate.issue event per certificate, eab.bind per binding
    "database_integrity",  # PRAGMA integrity_check and foreign_key_check after the restart
    "files_whole",  # no half-written file after the restart either
    "server_log_clean",  # no Traceback in the killed run's log
)
# On PostgreSQL: what SQLite's file checks give way to, and what replicas add.
SQLITE_FILE_CHECKS = {
    "crash_state_integrity": "SQLite's PRAGMA integrity_check of the file and WAL the kill "
    "left; PostgreSQL's own WAL replay and constraints stand for it",
    "database_integrity": "SQLite's PRAGMA integrity_check and foreign_key_check; "
    "PostgreSQL enforces its foreign keys on every commit",
}
REPLICA_CHECKS = (
    "survivor_serves",  # the other replicas answer /health while one is dead
    "replicas_heal",  # after a database restart every replica answers /health again by itself
)
ALL_CHECKS = (*CHECKS, *REPLICA_CHECKS)
ROUND_KINDS = ("server_kill", "replica_kill", "database_restart")


def round_checks(kind: str) -> tuple[str, ...]:
    """The checks a round of this kind runs (``server_kill``: SQLite's, all of CHECKS)."""
    if kind == "server_kill":
        return CHECKS
    shared = tuple(c for c in CHECKS if c not in SQLITE_FILE_CHECKS)
    if kind == "replica_kill":
        return (*shared, "survivor_serves")
    no_kill = ("process_group_dead", "server_restarts")
    return (*(c for c in shared if c not in no_kill), "replicas_heal")


def cli_env() -> dict[str, str]:
    """The CLI and the server run the code of this checkout, like the drill itself."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def run_cli(args: Sequence[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACMEFLEET, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=cli_env(),
    )


def must_cli(args: Sequence[str]) -> str:
    done = run_cli(args)
    if done.returncode != 0:
        raise RuntimeError(f"acmefleet {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


# ---------------------------------------------------------------- the server


def group_alive(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies are dead)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


class FailoverTransport(httpx.BaseTransport):
    """Where a drill client's requests go when replicas share PostgreSQL: each to the next
    replica in turn (URLs name the first's port, as replicas behind one balancer do). A
    replica that refuses the connection: the next one at once. A request cut off (sent, no
    answer: its replica was killed): sent again to the next one, as the client's retry; its
    effect may already be committed (``cut`` counts them, the caller judges the answer). A
    503 with Retry-After (the database away): the same request again after that delay.
    All of it within ``RETRY_DEADLINE`` of the first attempt; then the last error stands."""

    def __init__(
        self,
        ports: Sequence[int],
        verify: ssl.SSLContext,
        stats: collections.Counter[str],
        lock: threading.Lock,
    ) -> None:
        self._inner = httpx.HTTPTransport(verify=verify)
        self._ports = list(ports)
        self._turn = itertools.count()
        self._stats = stats  # shared by the clients of a drill: refused, cut, 503
        self._lock = lock
        self.cut = 0  # this transport's requests cut off and sent again

    def _count(self, what: str) -> None:
        with self._lock:
            self._stats[what] += 1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + RETRY_DEADLINE
        failures = 0
        while True:
            port = self._ports[next(self._turn) % len(self._ports)]
            request.url = request.url.copy_with(port=port)
            try:
                response = self._inner.handle_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                self._count("refused")
                failures += 1
                # Every replica refused: wait a little before the next turn.
                pause = 0.0 if failures % len(self._ports) else 0.2
                if time.monotonic() + pause > deadline:
                    raise
            except httpx.TransportError:
                self._count("cut")
                self.cut += 1
                pause = 0.0
                if time.monotonic() > deadline:
                    raise
            else:
                if response.status_code != 503 or "Retry-After" not in response.headers:
                    return response
                response.read()
                response.close()
                self._count("503")
                pause = min(retry_after_seconds(response, 1.0), RETRY_AFTER_CAP)
                if time.monotonic() + pause > deadline:
                    return response
            time.sleep(pause)

    def close(self) -> None:
        self._inner.close()


class Replica:
    """One server process on one data directory: started, killed, started again."""

    def __init__(
        self, workdir: Path, acme: AcmefleetServer, name: str, workers: int, own_ports: bool
    ) -> None:
        self.workdir = workdir
        self.acme = acme
        self.name = name
        self.workers = workers
        # Replicas made from a copy of the first's data dir listen where the command says.
        self.own_ports = own_ports
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = workdir / f"{name}-0.log"

    @property
    def data_dir(self) -> Path:
        return self.acme.data_dir

    def start(self, timeout: float) -> float:
        """Start ``server run``; seconds until both listeners answer /health."""
        self.starts += 1
        self.log_path = self.workdir / f"{self.name}-{self.starts}.log"
        began = time.monotonic()
        listen = []
        if self.own_ports:
            listen = ["--listen", f"127.0.0.1:{self.acme.port}"]
            listen += ["--pki-listen", f"127.0.0.1:{self.acme.pki_port}"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    ACMEFLEET,
                    "server",
                    "run",
                    "--data-dir",
                    str(self.data_dir),
                    "--workers",
                    str(self.workers),
                    "--log-level",
                    "info",
                    *listen,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=cli_env(),
                preexec_fn=die_with_parent,  # noqa: PLW1509 - spawned from the main thread
            )
        self.wait_healthy(began + timeout)
        return time.monotonic() - began

    def wait_healthy(self, deadline: float) -> None:
        """Until both listeners answer /health ``ok`` (the database reachable), or raise."""
        assert self.proc is not None
        urls = [
            f"https://localhost:{self.acme.port}/health",
            f"http://127.0.0.1:{self.acme.pki_port}/health",
        ]
        with httpx.Client(verify=str(self.acme.ca_bundle), timeout=2.0, trust_env=False) as http:
            for url in urls:
                while True:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"{self.name} exited {self.proc.returncode}")
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        answer = http.get(url)
                        if answer.status_code == 200 and answer.json()["status"] == "ok":
                            break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{url} ({self.name}) did not answer ok in time")
                    time.sleep(0.05)

    def kill(self) -> list[int]:
        """SIGKILL the whole process group; the pids still running 5 s later (none, we hope)."""
        assert self.proc is not None
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while (alive := group_alive(pgid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.proc = None
        return alive

    def stop(self) -> None:
        if self.proc is not None:
            terminate_group(self.proc)
            self.proc = None


class DrillServer:
    """One data directory and its server (SQLite); or, with ``postgres``, ``replicas``
    servers on copies of one data directory sharing that PostgreSQL database."""

    def __init__(
        self,
        workdir: Path,
        workers: int,
        validation_timeout: int,
        postgres: PostgresServer | None = None,
        replicas: int = 1,
    ) -> None:
        self.workdir = workdir
        self.workers = workers
        port, pki_port, http01_port = free_ports(3)
        self.acme = AcmefleetServer(workdir / "data", port, pki_port, http01_port)
        self.validation_timeout = timedelta(seconds=validation_timeout)
        self.postgres = postgres
        self.replica_count = replicas
        self.database_url = ""
        name = "replica-0" if postgres is not None else "server"
        self.replicas = [Replica(workdir, self.acme, name, workers, own_ports=False)]
        self.org_id = 0
        self.failover: collections.Counter[str] = collections.Counter()
        self.failover_lock = threading.Lock()

    @property
    def replicated(self) -> bool:
        return self.postgres is not None

    @property
    def data_dir(self) -> Path:
        return self.acme.data_dir

    @property
    def db_file(self) -> Path:
        return self.data_dir / SQLITE_FILE

    @property
    def db(self) -> Path | str:
        """Where the checks read: the SQLite file, or the PostgreSQL URL."""
        return self.database_url or self.db_file

    @property
    def log_path(self) -> Path:
        return self.replicas[0].log_path

    def init(self) -> float:
        """``server init``, loopback validation, no rate limits, the drill's organisation;
        how long ``server init`` took. On PostgreSQL, then the other replicas' data dirs."""
        database = []
        if self.postgres is not None:
            self.database_url = self.postgres.create_database("acmefleet")
            database = ["--database-url", self.database_url]
        began = time.monotonic()
        must_cli(
            [
                "server",
                "init",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.acme.port}",
                "--pki-listen",
                f"127.0.0.1:{self.acme.pki_port}",
                "--base-url",
                self.acme.base_url,
                "--admin-token-file",
                str(self.workdir / "admin-token"),
                *database,
            ]
        )
        took = time.monotonic() - began
        configure(
            self.data_dir,
            http01_port=self.acme.http01_port,
            settings={
                **NO_LIMITS,
                "timeout_seconds": str(int(self.validation_timeout.total_seconds())),
            },
        )
        self.acme.org(ORG, PRIVATE_DOMAIN, PUBLIC_DOMAIN)  # in the store, as the CLI would
        with reading(self.db) as conn:
            found = conn.execute(select(organizations.c.id).where(organizations.c.name == ORG))
            self.org_id = int(found.scalar_one())
        for n in range(1, self.replica_count):
            # Another replica as the deployment makes it: a copy of the first's data dir
            # (CA and TLS keys, configuration: the base URL stays the first's).
            data_dir = self.workdir / f"data-{n}"
            shutil.copytree(self.data_dir, data_dir, symlinks=True)
            port, pki_port = free_ports(2)
            acme = AcmefleetServer(data_dir, port, pki_port, self.acme.http01_port)
            self.replicas.append(Replica(self.workdir, acme, f"replica-{n}", self.workers, True))
        return took

    def transport(self) -> FailoverTransport | None:
        """A client's transport over the replicas (None: straight to the one server)."""
        if not self.replicated:
            return None
        verify = ssl.create_default_context(cafile=str(self.acme.ca_bundle))
        ports = [r.acme.port for r in self.replicas]
        return FailoverTransport(ports, verify, self.failover, self.failover_lock)

    def client(
        self, endpoint: str, key: AccountKey | None = None, **kwargs: Any
    ) -> tuple[AcmeClient, FailoverTransport | None]:
        transport = self.transport()
        if transport is not None:
            kwargs["bad_nonce_retries"] = max(kwargs.get("bad_nonce_retries", 0), 3)
        client = AcmeClient(
            self.acme.directory(endpoint),
            self.acme.ca_bundle,
            key,
            timeout=REQUEST_TIMEOUT,
            transport=transport,
            **kwargs,
        )
        return client, transport

    def console(self) -> httpx.Client:
        """A console REST API client with the first admin token ``server init`` wrote."""
        token = (self.workdir / "admin-token").read_text().strip()
        return httpx.Client(
            base_url=f"{self.acme.base_url}/admin/api/v1",
            verify=str(self.acme.ca_bundle),
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT,
            trust_env=False,
            transport=self.transport(),
        )

    def start(self, timeout: float) -> float:
        """Start every replica; seconds until the last answers /health."""
        return max(replica.start(timeout) for replica in self.replicas)

    def kill(self) -> list[int]:
        """SIGKILL the (one) server's process group."""
        return self.replicas[0].kill()

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


def responder(port: int, seed: float) -> Http01Responder:
    """The http-01 web server every name resolves to; answers after a random short delay."""
    rng, lock = random.Random(seed), threading.Lock()

    def delay() -> float:
        with lock:
            return rng.uniform(0, RESPONDER_DELAY)

    return Http01Responder(port, delay)


# ---------------------------------------------------------------- what clients were told


@dataclass(eq=False)
class AccountRec:
    endpoint: str
    key: AccountKey
    eab: tuple[str, str]
    round_no: int
    sent: bool = False  # newAccount was sent
    url: str | None = None  # ... and answered with this account URL


@dataclass(eq=False)
class OrderRec:
    account: AccountRec
    url: str
    round_no: int


@dataclass(eq=False)
class CertRec:
    account: AccountRec
    order_url: str
    url: str
    pem: str
    serial_hex: str
    round_no: int
    how: str  # "load": received before a kill; "resumed": its order was finished after one
    downloaded_after_restart: bool = False


def leaf_serial_hex(pem: str) -> str:
    """Serial as the store keeps it: lower-case hex, no leading zeros."""
    return format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")


class Journal:
    """Everything the clients were told, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accounts: list[AccountRec] = []
        self.orders: list[OrderRec] = []
        self.certs: list[CertRec] = []
        self.interrupted: collections.Counter[str] = collections.Counter()  # cut in flight
        self.refused = 0  # tried after the kill
        self.slowest = 0.0  # the longest any request of the round took, or was in flight
        self.unexpected: list[str] = []
        self.invalid_on_purpose = 0

    def add_account(self, rec: AccountRec) -> None:
        with self.lock:
            self.accounts.append(rec)

    def add_order(self, rec: OrderRec) -> None:
        with self.lock:
            self.orders.append(rec)

    def add_cert(self, rec: CertRec) -> None:
        with self.lock:
            self.certs.append(rec)


# ---------------------------------------------------------------- the load


class Interrupted(Exception):
    """A request got no answer because the server was killed: ``cut`` if it was sent before
    the kill (in flight), else it was refused by a dead server."""

    def __init__(self, step: str, cut: bool) -> None:
        super().__init__(step)
        self.step = step
        self.cut = cut


class Unexpected(Exception):
    """An answer the load did not expect (an error before the kill, say)."""


@dataclass
class Load:
    server: DrillServer
    responder: Http01Responder
    journal: Journal
    round_no: int
    stop: threading.Event = field(default_factory=threading.Event)
    killed_at: float = float("inf")  # time.monotonic() just before the SIGKILL
    names: Iterator[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_name(self, domain: str) -> str:
        with self.lock:
            return f"r{self.round_no}n{next(self.names)}.{domain}"

    @property
    def replicated(self) -> bool:
        """Replicas on PostgreSQL: the load outlives a kill (the client retries on another
        replica) and ``stop`` lets each client finish the order it is on."""
        return self.server.replicated


class Driver:
    """One client thread: fresh EAB accounts, each doing a few full issuances."""

    def __init__(self, load: Load, endpoint: str, seed: float) -> None:
        self.load = load
        self.endpoint = endpoint
        self.rng = random.Random(seed)
        self.client: AcmeClient | None = None
        self.transport: FailoverTransport | None = None
        self.console: httpx.Client | None = None
        self.account: AccountRec | None = None

    def run(self) -> None:
        journal = self.load.journal
        try:
            while not self.load.stop.is_set():
                self._account()
                for _ in range(ORDERS_PER_ACCOUNT):
                    if self.load.stop.is_set():
                        return
                    if self.endpoint == "public":
                        self._public_order()
                    else:
                        self._private_order()
        except Interrupted as exc:
            with journal.lock:
                if exc.cut:
                    journal.interrupted[exc.step] += 1
                else:
                    journal.refused += 1
        except Exception as exc:
            with journal.lock:
                journal.unexpected.append(f"{self.endpoint}: {type(exc).__name__}: {exc}")
        finally:
            if self.client is not None:
                self.client.close()
            if self.console is not None:
                self.console.close()

    def _call(
        self,
        step: str,
        send: Callable[[], httpx.Response],
        ok: tuple[int, ...] = (200,),
        after_cut: tuple[int, ...] = (),
    ) -> httpx.Response:
        """``send()``; an answer not in ``ok`` is Unexpected, unless the request was cut off
        on a killed replica and sent again, and the answer is one of ``after_cut`` (what the
        repeat of a request already committed answers)."""
        cuts = self.transport.cut if self.transport is not None else 0
        began = time.monotonic()
        try:
            response = send()
        except httpx.TransportError as exc:
            self._took(min(time.monotonic(), self.load.killed_at) - began)
            if self.load.replicated:
                raise Unexpected(f"{step}: {exc!r} from every replica, retried") from exc
            if self.load.stop.is_set():
                raise Interrupted(step, cut=began < self.load.killed_at) from exc
            raise Unexpected(f"{step}: {exc!r} before the kill") from exc
        self._took(time.monotonic() - began)
        retried = self.transport is not None and self.transport.cut > cuts
        if retried:
            with self.load.journal.lock:
                self.load.journal.interrupted[step] += 1
        if response.status_code not in ok and not (retried and response.status_code in after_cut):
            raise Unexpected(f"{step}: {response.status_code} {response.text[:300]}")
        return response

    def _took(self, seconds: float) -> None:
        with self.load.journal.lock:
            self.load.journal.slowest = max(self.load.journal.slowest, seconds)

    def _account(self) -> None:
        """A fresh EAB minted through the console API (an admin's request: the drill itself
        never opens the database while the server may be killed), then newAccount."""
        if self.client is not None:
            self.client.close()
        server = self.load.server.acme
        if self.console is None:
            self.console = self.load.server.console()
        console = self.console
        body = {"org_id": self.load.server.org_id, "endpoint": self.endpoint}
        minted = self._call("mintEab", lambda: console.post("/eab", json=body), ok=(201,))
        eab = (str(minted.json()["kid"]), str(minted.json()["hmac_key"]))
        if self.load.replicated:
            client, self.transport = self.load.server.client(self.endpoint)
        else:
            client = AcmeClient(
                server.directory(self.endpoint), server.ca_bundle, timeout=REQUEST_TIMEOUT
            )
        self.client = client
        rec = AccountRec(self.endpoint, client.key, eab, self.load.round_no)
        rec.sent = True  # from here on, the kill may cut newAccount (or its nonce, first)
        self.load.journal.add_account(rec)
        # Sent again after a cut, a newAccount that was committed finds its account: 200.
        created = self._call(
            "newAccount", lambda: client.new_account(eab), ok=(201,), after_cut=(200,)
        )
        rec.url = created.headers["Location"]
        self.account = rec

    def _new_order(self, name: str) -> tuple[OrderRec, dict[str, Any]]:
        assert self.client is not None
        client = self.client
        assert self.account is not None
        created = self._call("newOrder", lambda: client.new_order([name]), ok=(201,))
        order = OrderRec(self.account, created.headers["Location"], self.load.round_no)
        self.load.journal.add_order(order)
        return order, created.json()

    def _poll(self, step: str, url: str, until: set[str], timeout: float) -> dict[str, Any]:
        assert self.client is not None
        client = self.client
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = self._call(step, lambda: client.get(url)).json()
            if body.get("status") in until:
                return body
            if time.monotonic() > deadline:
                raise Unexpected(f"{step}: {url} still {body.get('status')} after {timeout} s")
            if self.load.stop.is_set() and not self.load.replicated:
                raise Interrupted(step, cut=False)
            time.sleep(0.1)

    def _finalize_and_download(self, order: OrderRec, body: dict[str, Any], name: str) -> None:
        assert self.client is not None
        client = self.client
        csr, _ = make_csr([name])
        # Sent again after a cut, a finalize that was committed finds the order finalized
        # (403 orderNotReady): the client looks at its order then.
        done = self._call(
            "finalize", lambda: client.finalize(body["finalize"], csr), after_cut=(403,)
        )
        body = done.json()
        if done.status_code == 403 or body["status"] == "processing":
            body = self._poll("order", order.url, {"valid", "invalid"}, REQUEST_TIMEOUT)
        if body["status"] != "valid":
            raise Unexpected(f"finalize: order ended {body['status']}: {body}")
        cert_url = body["certificate"]
        pem = self._call("download", lambda: client.post(cert_url, None)).text
        assert self.account is not None
        self.load.journal.add_cert(
            CertRec(
                self.account,
                order.url,
                cert_url,
                pem,
                leaf_serial_hex(pem),
                self.load.round_no,
                "load",
            )
        )

    def _private_order(self) -> None:
        name = self.load.next_name(PRIVATE_DOMAIN)
        order, body = self._new_order(name)
        if body["status"] != "ready":
            raise Unexpected(f"a private order is {body['status']}, not ready")
        self._finalize_and_download(order, body, name)

    def _public_order(self) -> None:
        assert self.client is not None
        client = self.client
        name = self.load.next_name(PUBLIC_DOMAIN)
        order, body = self._new_order(name)
        authz_url = body["authorizations"][0]
        authz = self._call("authz", lambda: client.get(authz_url)).json()
        challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
        good = self.rng.random() >= BAD_ANSWER_SHARE
        answer = client.key.key_authorization(challenge["token"])
        self.load.responder.respond(challenge["token"], answer if good else f"{answer}x")
        self._call("challenge", lambda: client.answer_challenge(challenge["url"]))
        timeout = self.load.server.validation_timeout.total_seconds() + REQUEST_TIMEOUT
        self._poll("authz", authz_url, {"valid", "invalid"}, timeout)
        body = self._poll("order", order.url, {"ready", "valid", "invalid"}, REQUEST_TIMEOUT)
        if body["status"] == "invalid" and not good:
            if "error" not in body:
                raise Unexpected(f"an invalid order without an error: {body}")
            with self.load.journal.lock:
                self.load.journal.invalid_on_purpose += 1
            return
        if body["status"] != "ready" or not good:
            raise Unexpected(f"a public order answered {'well' if good else 'badly'}: {body}")
        self._finalize_and_download(order, body, name)


# ---------------------------------------------------------------- reading the data dir


@contextlib.contextmanager
def reading(db: Path | str) -> Iterator[Connection]:
    """One read transaction on ``db``: a SQLite file, or a database URL (PostgreSQL: one
    REPEATABLE READ snapshot, so that a check's several queries see one state while the
    replicas go on writing)."""
    if isinstance(db, Path):
        database = open_database(f"sqlite:///{db}")
        try:
            with database.read() as conn:
                yield conn
        finally:
            database.dispose()
        return
    database = open_database(db)
    try:
        with database.reader.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    finally:
        database.dispose()


def sqlite_problems(db_file: Path) -> list[str]:
    """What ``PRAGMA integrity_check`` and ``foreign_key_check`` report (empty: sound)."""
    found: list[str] = []
    page_size = 4096
    con = sqlite3.connect(db_file, timeout=10)
    try:
        page_size = int(con.execute("PRAGMA page_size").fetchone()[0])
        found += [row[0] for row in con.execute("PRAGMA integrity_check") if row[0] != "ok"]
        found += [f"foreign key: {tuple(row)}" for row in con.execute("PRAGMA foreign_key_check")]
    except sqlite3.DatabaseError as exc:
        found.append(f"SQLite: {exc}")
    finally:
        con.close()
    size = db_file.stat().st_size
    if size == 0 or size % page_size:
        found.append(f"{db_file.name} is {size} bytes, not whole {page_size}-byte pages")
    return found


@dataclass(frozen=True)
class FileState:
    size: int
    mode: int
    sha256: str


def data_files(root: Path) -> dict[str, FileState]:
    """Every file under ``root`` but the database's, with its size, mode and hash."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in DB_FILES:
            found[str(path.relative_to(root))] = FileState(
                path.stat().st_size,
                path.stat().st_mode,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return found


def half_written(root: Path, baseline: Mapping[str, FileState]) -> list[str]:
    """What a data directory left by a kill must not hold, as problems (empty: whole).

    - no init staging directory (``.<name>.init-*``) inside it or beside it, and no
      temporary file of an atomic write (``.<file>.*``): nothing whose name starts with a dot;
    - no rollback journal (``-journal``): the database is written through its WAL only;
    - no empty file but the WAL and its index, which SQLite creates empty;
    - the CA, TLS, bundle and configuration files exactly as ``server init`` wrote them
      (same names, sizes, modes and SHA-256): the server never rewrites them;
    - the configuration still loads.
    """
    problems = [
        f"leftover {p.relative_to(root.parent)}"
        for p in [*root.rglob(".*"), *root.parent.glob(f".{root.name}.init-*")]
    ]
    for path in root.rglob("*"):
        if path.is_file() and path.stat().st_size == 0 and path.name not in DB_FILES[1:]:
            problems.append(f"empty file {path.relative_to(root)}")
        if path.name.endswith("-journal"):
            problems.append(f"rollback journal {path.relative_to(root)}")
    now = data_files(root)
    for name in sorted(set(now) | set(baseline)):
        if name not in now:
            problems.append(f"{name} disappeared")
        elif name not in baseline:
            problems.append(f"{name} appeared")
        elif now[name] != baseline[name]:
            problems.append(f"{name} changed: {baseline[name]} -> {now[name]}")
    try:
        load_config(root)
    except Exception as exc:
        problems.append(f"config.toml does not load: {exc}")
    return problems


def processing_challenges(conn: Connection) -> dict[str, datetime | None]:
    query = select(challenges.c.id, challenges.c.processing_since).where(
        challenges.c.status == "processing"
    )
    return {row.id: row.processing_since for row in conn.execute(query)}


def eab_problems(db_file: Path | str) -> list[str]:
    """No credential consumed yet unbound; every account bound to its own credential;
    no credential bound to two accounts or to one that does not exist."""
    problems = []
    with reading(db_file) as conn:
        creds = {row.kid: row for row in conn.execute(select(eab_credentials))}
        accts = {row.id: row for row in conn.execute(select(accounts))}
    for cred in creds.values():
        erased, bound = cred.hmac_key is None, cred.account_id is not None
        if erased and not bound and cred.revoked_at is None:
            problems.append(f"EAB {cred.kid}: HMAC erased but bound to no account")
        if bound and not erased:
            problems.append(f"EAB {cred.kid}: bound but its HMAC kept")
        if bound != (cred.bound_at is not None):
            problems.append(f"EAB {cred.kid}: account_id and bound_at disagree")
        if bound and cred.account_id not in accts:
            problems.append(f"EAB {cred.kid}: bound to a missing account {cred.account_id}")
    uses = collections.Counter(c.account_id for c in creds.values() if c.account_id)
    problems += [f"account {a} bound by {n} credentials" for a, n in uses.items() if n > 1]
    for acct in accts.values():
        own = creds.get(acct.eab_kid)
        if own is None or own.account_id != acct.id:
            problems.append(f"account {acct.id}: its credential {acct.eab_kid} is not bound")
    return problems


def order_problems(db_file: Path | str) -> dict[str, list[str]]:
    """Stored orders: none processing; a valid one has exactly its certificate row, and no
    other order has one (under the check's name each problem belongs to)."""
    with reading(db_file) as conn:
        rows = list(conn.execute(select(orders)))
        certs = list(conn.execute(select(certificates.c.id, certificates.c.order_id)))
    by_order = collections.defaultdict(list)
    for cert in certs:
        by_order[cert.order_id].append(cert.id)
    problems: dict[str, list[str]] = collections.defaultdict(list)
    for row in rows:
        issued = by_order.get(row.id, [])
        if row.finalization == "processing":
            problems["orders_none_processing"].append(f"order {row.id} is processing")
        if row.finalization == "valid" and issued != [row.certificate_id]:
            problems["orders_valid_have_certificate"].append(
                f"valid order {row.id}: certificate {row.certificate_id}, rows {issued}"
            )
        elif row.finalization != "valid" and issued:
            problems["orders_valid_have_certificate"].append(
                f"{row.finalization} order {row.id} has certificate rows {issued}"
            )
    missing = set(by_order) - {row.id for row in rows}
    problems["orders_valid_have_certificate"] += [f"certificate of no order {o}" for o in missing]
    return problems


def audit_coverage_problems(db_file: Path | str) -> list[str]:
    """A certificate and its audit event, a binding and its event: one transaction each."""
    with reading(db_file) as conn:
        serials = set(conn.execute(select(certificates.c.serial_hex)).scalars())
        bound = set(
            conn.execute(
                select(eab_credentials.c.kid).where(eab_credentials.c.account_id.is_not(None))
            ).scalars()
        )
        events = collections.defaultdict(set)
        for action, target in conn.execute(
            select(audit_events.c.action, audit_events.c.target).where(
                audit_events.c.action.in_(["certificate.issue", "eab.bind"])
            )
        ):
            events[action].add(target)
    problems = [
        f"certificate {s}: no certificate.issue event"
        for s in serials - events["certificate.issue"]
    ]
    problems += [
        f"certificate.issue for {s}: no certificate" for s in events["certificate.issue"] - serials
    ]
    problems += [f"EAB {k}: bound without an eab.bind event" for k in bound - events["eab.bind"]]
    problems += [f"eab.bind for {k}: not bound" for k in events["eab.bind"] - bound]
    return problems


@dataclass(frozen=True)
class CrashState:
    """The database as the kill left it, read from a copy (the server recovers the original)."""

    problems: list[str]  # integrity_check, foreign_key_check, whole pages
    processing_orders: list[str]
    inconsistent: list[str]  # EAB bindings, order ⇔ certificate, audit events
    processing_challenges: dict[str, datetime | None]
    wal_bytes: int


def read_live_state(url: str) -> CrashState:
    """The PostgreSQL database as a kill or a restart left it, read at once (the other
    replicas go on writing: each check reads one snapshot of its own)."""
    found = order_problems(url)
    inconsistent = [
        *eab_problems(url),
        *found["orders_valid_have_certificate"],
        *audit_coverage_problems(url),
    ]
    with reading(url) as conn:
        processing = processing_challenges(conn)
    return CrashState([], found["orders_none_processing"], inconsistent, processing, 0)


def read_crash_state(db_file: Path, scratch: Path) -> CrashState:
    scratch.mkdir()
    try:
        wal = db_file.with_name(f"{db_file.name}-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        shutil.copy2(db_file, scratch / db_file.name)
        if wal.exists():
            shutil.copy2(wal, scratch / wal.name)
        copy = scratch / db_file.name
        problems = sqlite_problems(copy)
        found = order_problems(copy)
        inconsistent = [
            *eab_problems(copy),
            *found["orders_valid_have_certificate"],
            *audit_coverage_problems(copy),
        ]
        with reading(copy) as conn:
            processing = processing_challenges(conn)
        return CrashState(
            problems, found["orders_none_processing"], inconsistent, processing, wal_bytes
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------- the checks


@dataclass
class RoundReport:
    round_no: int
    kill_after_s: float
    kind: str = "server_kill"  # ROUND_KINDS
    target: str = "server"  # what was killed or restarted: a replica's name, "postgresql"
    certs_load: int = 0
    certs_resumed: int = 0
    orders_new: int = 0
    accounts_new: int = 0
    invalid_on_purpose: int = 0
    interrupted: dict[str, int] = field(default_factory=dict)
    # PostgreSQL: what the clients' transports met (refused, cut, 503) and retried.
    failover: dict[str, int] = field(default_factory=dict)
    # PostgreSQL, from the server logs: validations a survivor took over from the killed
    # replica, and validations given back once the database was back (to run again).
    taken_over: int = 0
    given_back: int = 0
    # A figure, not a check: a request stalled (by a lock, say) shows here, and as few
    # certificates, since the kill comes before any timeout would.
    slowest_request_s: float = 0.0
    processing_challenges_at_kill: int = 0
    challenges_resumed: dict[str, int] = field(default_factory=dict)
    orders_finished_after_restart: dict[str, int] = field(default_factory=dict)
    wal_bytes_at_kill: int = 0
    restart_s: float = 0.0  # the killed server back, or every replica healthy again
    checks_s: float = 0.0  # the checks after the kill and after the restart, together
    fatal: bool = False  # the server did not start again: the drill stops here
    failures: dict[str, list[str]] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)

    def check(self, name: str, problems: Sequence[str]) -> None:
        assert name in round_checks(self.kind), (self.kind, name)
        if problems:
            self.failures[name] = list(problems)[:20]
        else:
            self.passed.append(name)


class Checker:
    """The invariants, after a kill and again after the restart."""

    def __init__(self, server: DrillServer, responder: Http01Responder, journal: Journal) -> None:
        self.server = server
        self.responder = responder
        self.journal = journal
        self.baselines = {r.data_dir: data_files(r.data_dir) for r in server.replicas}
        self.settled: set[str] = set()  # orders found valid with their PEM, or invalid
        self.owners: dict[str, AcmeClient] = {}
        self.logs_read: dict[Path, int] = {}  # how far each server log was read

    @property
    def baseline(self) -> dict[str, FileState]:
        return self.baselines[self.server.data_dir]

    def files_problems(self) -> list[str]:
        """``half_written`` of every replica's data dir."""
        problems = []
        for data_dir, baseline in self.baselines.items():
            prefix = "" if len(self.baselines) == 1 else f"{data_dir.name}: "
            problems += [prefix + p for p in half_written(data_dir, baseline)]
        return problems

    def log_problems(self, paths: Sequence[Path]) -> list[str]:
        """A Traceback in what these server logs gained since last read."""
        problems = []
        for path in paths:
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(self.logs_read.get(path, 0))
                text = handle.read().decode(errors="replace")
                self.logs_read[path] = handle.tell()
            if "Traceback" in text:
                problems.append(f"{path.name}: a Traceback")
        return problems

    # -- helpers

    def owner(self, rec: AccountRec) -> AcmeClient:
        """A client with the account's key, its URL known (recovered from the key if the
        newAccount answer was lost)."""
        found = self.owners.get(rec.key.thumbprint())
        if found is not None:
            return found
        client, _ = self.server.client(
            rec.endpoint, rec.key, poll_interval=0.1, bad_nonce_retries=3
        )
        if rec.url is None:
            existing = client.new_account(None, only_return_existing=True)
            if existing.status_code != 200:
                client.close()
                raise RuntimeError(f"no account for a key: {existing.status_code}")
            rec.url = existing.headers["Location"]
        client.kid = rec.url
        self.owners[rec.key.thumbprint()] = client
        return client

    def close_owners(self) -> None:
        for client in self.owners.values():
            client.close()
        self.owners.clear()

    def account_by_id(self) -> dict[str, AccountRec]:
        """Stored account id → what the drill knows of it (by endpoint and key thumbprint)."""
        known = {(a.endpoint, a.key.thumbprint()): a for a in self.journal.accounts}
        with reading(self.server.db) as conn:
            rows = conn.execute(select(accounts.c.id, accounts.c.endpoint, accounts.c.thumbprint))
            return {
                row.id: known[(row.endpoint, row.thumbprint)]
                for row in rows
                if (row.endpoint, row.thumbprint) in known
            }

    # -- after the kill, before the restart

    def after_kill(self, report: RoundReport, survivors: list[int], crash: CrashState) -> None:
        report.check("process_group_dead", [f"pid {pid} still runs" for pid in survivors])
        with self.journal.lock:
            report.check("load_responses_ok", self.journal.unexpected)
            self.journal.unexpected.clear()
        report.check("crash_state_integrity", crash.problems)
        report.check("crash_state_no_processing_order", crash.processing_orders)
        report.check("crash_state_consistent", crash.inconsistent)
        report.check("crash_state_files_whole", self.files_problems())
        report.check("server_log_clean", self.log_problems([self.server.log_path]))

    def after_event(self, report: RoundReport, crash: CrashState, logs: Sequence[Path]) -> None:
        """On PostgreSQL, once the load is stopped: the answers, the state the kill or the
        restart left (read at once), the files, the logs."""
        with self.journal.lock:
            report.check("load_responses_ok", self.journal.unexpected)
            self.journal.unexpected.clear()
        report.check("crash_state_no_processing_order", crash.processing_orders)
        report.check("crash_state_consistent", crash.inconsistent)
        report.check("crash_state_files_whole", self.files_problems())
        report.check("server_log_clean", self.log_problems(logs))

    # -- after the restart

    def after_restart(
        self, report: RoundReport, crash: CrashState, ready_at: datetime | None
    ) -> None:
        """``ready_at`` None: the challenges were checked already (on PostgreSQL, before the
        killed replica came back)."""
        if ready_at is not None:
            report.check(
                "challenges_resolved_in_deadline", self.challenges(report, crash, ready_at)
            )
        report.check("accounts_acknowledged_exist", self._acknowledged_accounts())
        report.check("eab_interrupted_resumable", self._resume_bindings())
        report.check("eab_bindings_consistent", eab_problems(self.server.db))
        report.check("orders_acknowledged_exist", self._acknowledged_orders())
        self._orders(report)
        report.check("certificates_in_db", self._certificates_in_db())
        report.check("certificates_downloadable", self._downloads())
        report.check("audit_chain_verifies", self._audit_verify())
        report.check("audit_covers_commits", audit_coverage_problems(self.server.db))
        if not self.server.replicated:
            report.check("database_integrity", sqlite_problems(self.server.db_file))
        report.check("files_whole", self.files_problems())

    def challenges(self, report: RoundReport, crash: CrashState, ready_at: datetime) -> list[str]:
        """Each challenge the kill left processing ends valid or invalid: a resumed validation
        keeps the deadline counted from when it was asked for, not from the restart (on
        PostgreSQL ``ready_at`` is the kill or the database's return: the survivors resume
        them, the killed replica still down)."""
        problems = []
        deadline = self.server.validation_timeout + timedelta(seconds=1)  # policy's GRACE
        bounds = {
            cid: max(since + deadline, ready_at) + DEADLINE_SLACK if since else ready_at
            for cid, since in crash.processing_challenges.items()
        }
        outcomes: collections.Counter[str] = collections.Counter()
        left = dict(bounds)
        while left:
            with reading(self.server.db) as conn:
                query = select(challenges.c.id, challenges.c.status).where(
                    challenges.c.id.in_(list(left))
                )
                states = {row.id: row.status for row in conn.execute(query)}
            now = datetime.now(UTC)
            for cid in list(left):
                status = states.get(cid)
                if status != "processing":
                    outcomes[str(status)] += 1
                    if status not in ("valid", "invalid"):
                        problems.append(f"challenge {cid} ended {status}")
                    del left[cid]
                elif now > left[cid]:
                    problems.append(
                        f"challenge {cid} still processing at {now:%T} > {left[cid]:%T}"
                    )
                    del left[cid]
            if left:
                time.sleep(0.1)
        report.challenges_resumed = dict(outcomes)
        return problems

    def _acknowledged_accounts(self) -> list[str]:
        stored = self.account_by_id()
        known = {id(rec) for rec in stored.values()}
        return [
            f"account {rec.url} was created (201) but is not stored"
            for rec in self.journal.accounts
            if rec.url is not None and id(rec) not in known
        ]

    def _resume_bindings(self) -> list[str]:
        """A newAccount the kill cut off is repeated with the same key and EAB: the
        credential is either still unused (201) or was bound to this very key (200)."""
        problems = []
        for rec in self.journal.accounts:
            if not rec.sent or rec.url is not None:
                continue
            client, _ = self.server.client(rec.endpoint, rec.key, bad_nonce_retries=3)
            with client:
                again = client.new_account(rec.eab)
            if again.status_code in (200, 201):
                rec.url = again.headers["Location"]
            else:
                problems.append(f"newAccount with EAB {rec.eab[0]} again: {again.text[:300]}")
        return problems

    def _acknowledged_orders(self) -> list[str]:
        with reading(self.server.db) as conn:
            stored = set(conn.execute(select(orders.c.id)).scalars())
        return [
            f"order {o.url} was created (201) but is not stored"
            for o in self.journal.orders
            if o.url.rsplit("/", 1)[-1] not in stored
        ]

    def _orders(self, report: RoundReport) -> None:
        """Every stored order: none processing, valid ⇔ one certificate row; those left
        ``ready`` or ``pending`` are driven on now, as their client would."""
        problems = order_problems(self.server.db)
        with reading(self.server.db) as conn:
            rows = list(conn.execute(select(orders.c.id, orders.c.account_id)))
        owners = self.account_by_id()
        outcomes: collections.Counter[str] = collections.Counter()
        for row in rows:
            if row.id in self.settled:
                continue
            rec = owners.get(row.account_id)
            if rec is None:
                problems["orders_valid_have_certificate"].append(f"order {row.id}: unknown owner")
                continue
            self._settle(row.id, rec, outcomes, problems)
        report.orders_finished_after_restart = dict(outcomes)
        for name in (
            "orders_none_processing",
            "orders_valid_have_certificate",
            "orders_ready_finalize",
            "orders_pending_complete",
            "orders_invalid_have_error",
        ):
            report.check(name, problems[name])

    def _settle(
        self,
        order_id: str,
        rec: AccountRec,
        outcomes: collections.Counter[str],
        problems: dict[str, list[str]],
    ) -> None:
        """Fetch the order as its owner; finish it if it is ready or pending; a valid one must
        serve its stored PEM, an invalid one its error. Settled orders are not fetched again."""
        client = self.owner(rec)
        url = f"{self.server.acme.base_url}/acme/{rec.endpoint}/order/{order_id}"
        fetched = client.get(url)
        if fetched.status_code != 200:
            problems["orders_valid_have_certificate"].append(f"GET {url}: {fetched.text[:200]}")
            return
        body: dict[str, Any] | None = fetched.json()
        assert body is not None
        origin = body["status"]
        if origin == "pending":
            body = self._complete(client, url, body, problems["orders_pending_complete"])
        if body is not None and body["status"] == "ready":
            check = "orders_ready_finalize" if origin == "ready" else "orders_pending_complete"
            body = self._finalize(client, rec, url, body, problems[check])
        if body is None:
            return
        status = body["status"]
        if status != origin:
            outcomes[f"{origin}->{status}"] += 1
        if status == "valid":
            served = client.post(body["certificate"], None)
            with reading(self.server.db) as conn:
                stored = conn.execute(
                    select(certificates.c.chain_pem).where(certificates.c.order_id == order_id)
                ).scalar_one_or_none()
            if served.status_code != 200 or served.text != stored:
                problems["orders_valid_have_certificate"].append(
                    f"order {order_id}: serves not its stored PEM ({served.status_code})"
                )
                return
        elif status == "invalid":
            if "error" not in body:
                problems["orders_invalid_have_error"].append(f"invalid order {url}: no error")
                return
        else:
            problems["orders_none_processing"].append(f"order {url} is {status}")
            return
        self.settled.add(order_id)

    def _complete(
        self, client: AcmeClient, url: str, body: dict[str, Any], problems: list[str]
    ) -> dict[str, Any] | None:
        """Answer what is still pending (a wrong answer set on purpose stays wrong), then wait
        for the order to be ready or invalid."""
        timeout = self.server.validation_timeout.total_seconds() + REQUEST_TIMEOUT
        try:
            for authz_url in body["authorizations"]:
                authz = client.get(authz_url).json()
                if authz["status"] != "pending":
                    continue
                challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
                if challenge["status"] == "pending":
                    token = challenge["token"]
                    self.responder.answers.setdefault(token, client.key.key_authorization(token))
                    answered = client.answer_challenge(challenge["url"])
                    if answered.status_code != 200:
                        problems.append(f"answering {challenge['url']}: {answered.text[:200]}")
                        return None
                client.poll(authz_url, ("valid", "invalid"), timeout)
            return client.poll_order(url, ("ready", "valid", "invalid"), timeout)
        except (TimeoutError, ClientError, httpx.HTTPError) as exc:
            problems.append(f"completing {url}: {exc}")
            return None

    def _finalize(
        self,
        client: AcmeClient,
        rec: AccountRec,
        url: str,
        body: dict[str, Any],
        problems: list[str],
    ) -> dict[str, Any] | None:
        csr, _ = make_csr([i["value"] for i in body["identifiers"]])
        try:
            done = client.finalize(body["finalize"], csr)
            if done.status_code != 200:
                problems.append(f"finalize {url} after the restart: {done.text[:300]}")
                return None
            body = done.json()
            if body["status"] == "processing":
                body = client.poll_order(url, ("valid", "invalid"), REQUEST_TIMEOUT)
            if body["status"] != "valid":
                problems.append(f"finalize {url} after the restart: {body['status']}")
                return None
            pem = client.download_certificate(body["certificate"])
        except (TimeoutError, ClientError, httpx.HTTPError) as exc:
            problems.append(f"finalize {url} after the restart: {exc}")
            return None
        self.journal.add_cert(
            CertRec(
                rec,
                url,
                body["certificate"],
                pem,
                leaf_serial_hex(pem),
                rec.round_no,
                "resumed",
                downloaded_after_restart=True,
            )
        )
        return body

    def _certificates_in_db(self) -> list[str]:
        """Every certificate any client received, in every round so far: its row, same PEM,
        same order and owner."""
        with reading(self.server.db) as conn:
            stored = {row.serial_hex: row for row in conn.execute(select(certificates))}
        owners = {id(rec): acct_id for acct_id, rec in self.account_by_id().items()}
        problems = []
        for cert in self.journal.certs:
            row = stored.get(cert.serial_hex)
            if row is None:
                problems.append(f"certificate {cert.serial_hex} ({cert.url}) is not stored")
            elif row.chain_pem != cert.pem:
                problems.append(f"certificate {cert.serial_hex}: the stored PEM differs")
            elif (
                cert.url.rsplit("/", 1)[-1] != row.id
                or cert.order_url.rsplit("/", 1)[-1] != row.order_id
            ):
                problems.append(f"certificate {cert.serial_hex}: another URL or order")
            elif owners.get(id(cert.account)) != row.account_id:
                problems.append(f"certificate {cert.serial_hex}: another owner")
        return problems

    def _downloads(self) -> list[str]:
        """Certificates received since the last restart, downloaded by their owner now."""
        problems = []
        for cert in self.journal.certs:
            if cert.downloaded_after_restart:
                continue
            answer = self.owner(cert.account).post(cert.url, None)
            if answer.status_code != 200 or answer.text != cert.pem:
                problems.append(f"{cert.url}: {answer.status_code}, not the PEM received")
            cert.downloaded_after_restart = True
        return problems

    def _audit_verify(self) -> list[str]:
        done = run_cli(
            ["admin", "audit", "verify", "--json", "--data-dir", str(self.server.data_dir)]
        )
        if done.returncode != 0:
            return [
                f"audit verify exited {done.returncode}: {done.stdout[-500:]}{done.stderr[-500:]}"
            ]
        return [] if json.loads(done.stdout).get("intact") is True else [done.stdout[-500:]]


# ---------------------------------------------------------------- killing server init

COMPLETE_DATA_DIR = ["acmefleet.db", "ca", "ca-bundle.pem", "config.toml", "tls"]


@dataclass
class InitKill:
    kill_after_s: float
    left: list[str]  # what the killed init left in the data dir
    complete: bool  # the data dir was in place before the kill: it must be usable as is
    problems: list[str]


def kill_inits(
    count: int, workdir: Path, init_seconds: float, rng: random.Random
) -> list[InitKill]:
    """``kill -9`` of ``server init`` at a random point of its run, on an existing empty data
    dir (the service user's directory: init stages inside it). Either the kill came after
    the data dir was complete, and it is usable as is (its audit chain verifies), or the next
    ``server init`` on it succeeds and leaves a complete data dir, nothing inside or beside."""
    done = []
    for n in range(count):
        home = workdir / f"init-kill-{n}"
        data = home / "data"
        data.mkdir(parents=True, mode=0o700)
        command = ["server", "init", "--data-dir", str(data), "--listen", "127.0.0.1:1"]
        command += ["--pki-listen", "127.0.0.1:2"]
        kill_after = rng.uniform(0.3, 1.0) * init_seconds
        proc = subprocess.Popen(
            [ACMEFLEET, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=cli_env(),
            start_new_session=True,
        )
        time.sleep(kill_after)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        left = sorted(p.name for p in data.iterdir())
        problems = []
        complete = left == COMPLETE_DATA_DIR
        if complete:
            usable = run_cli(["admin", "audit", "verify", "--data-dir", str(data)])
            if usable.returncode != 0:
                problems.append(f"the complete data dir does not verify: {usable.stderr}")
        else:
            again = run_cli(command)
            now = sorted(p.name for p in data.iterdir())
            beside = sorted(p.name for p in home.iterdir() if p.name != "data")
            if again.returncode != 0:
                problems.append(f"init after the kill exited {again.returncode}: {again.stderr}")
            elif now != COMPLETE_DATA_DIR or beside:
                problems.append(f"after the next init: {now} in the data dir, {beside} beside")
        done.append(InitKill(round(kill_after, 3), left, complete, problems))
        shutil.rmtree(home, ignore_errors=True)
    return done


# ---------------------------------------------------------------- the drill


def run_load(
    load: Load, clients: int, public_clients: int, rng: random.Random
) -> list[threading.Thread]:
    drivers = [Driver(load, "private", rng.random()) for _ in range(clients)]
    drivers += [Driver(load, "public", rng.random()) for _ in range(public_clients)]
    threads = [
        threading.Thread(target=d.run, name=f"drill-{d.endpoint}-{n}", daemon=True)
        for n, d in enumerate(drivers)
    ]
    for thread in threads:
        thread.start()
    return threads


def one_round(
    args: argparse.Namespace,
    round_no: int,
    server: DrillServer,
    checker: Checker,
    rng: random.Random,
) -> RoundReport:
    journal = checker.journal
    before = (len(journal.accounts), len(journal.orders), len(journal.certs))
    invalid_before = journal.invalid_on_purpose
    kill_after = rng.uniform(args.min_delay, args.max_delay)
    report = RoundReport(round_no, round(kill_after, 3))
    load = Load(server, checker.responder, journal, round_no)
    journal.interrupted.clear()
    journal.refused = 0
    journal.slowest = 0.0
    threads = run_load(load, args.clients, args.public_clients, rng)
    time.sleep(kill_after)
    load.stop.set()  # set first: a request failing from now on failed because of the kill
    load.killed_at = time.monotonic()
    survivors = server.kill()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        journal.unexpected.append("a client thread did not end within 30 s of the kill")
    checks_began = time.monotonic()
    crash = read_crash_state(server.db_file, args.workdir / f"crash-{round_no}")
    report.interrupted = dict(journal.interrupted)
    report.slowest_request_s = round(journal.slowest, 2)
    report.processing_challenges_at_kill = len(crash.processing_challenges)
    report.wal_bytes_at_kill = crash.wal_bytes
    checker.after_kill(report, survivors, crash)
    checks_s = time.monotonic() - checks_began
    try:
        report.restart_s = round(server.start(args.startup_timeout), 2)
    except (RuntimeError, TimeoutError) as exc:
        report.check("server_restarts", [f"{exc}; see {server.log_path}"])
        report.fatal = True
        return report
    report.check("server_restarts", [])
    return finish_round(
        report, checker, crash, datetime.now(UTC), checks_s, journal, before, invalid_before
    )


def finish_round(
    report: RoundReport,
    checker: Checker,
    crash: CrashState,
    ready_at: datetime | None,
    checks_s: float,
    journal: Journal,
    before: tuple[int, int, int],
    invalid_before: int,
) -> RoundReport:
    """The checks after a round's restart, then what the round's load did (both kinds)."""
    checks_began = time.monotonic()
    try:
        checker.after_restart(report, crash, ready_at)
    finally:
        checker.close_owners()
    report.checks_s = round(checks_s + time.monotonic() - checks_began, 2)
    report.accounts_new = len(journal.accounts) - before[0]
    report.orders_new = len(journal.orders) - before[1]
    report.certs_load = sum(1 for c in journal.certs[before[2] :] if c.how == "load")
    report.certs_resumed = sum(1 for c in journal.certs[before[2] :] if c.how == "resumed")
    report.invalid_on_purpose = journal.invalid_on_purpose - invalid_before
    return report


def database_restart_rounds(rounds: int, restarts: int) -> set[int]:
    """Which rounds restart PostgreSQL instead of killing a replica: ``restarts`` of them,
    spread evenly, the last one last (20 rounds, 6 restarts: 3, 6, 10, 13, 16, 20)."""
    return {(n * rounds) // restarts for n in range(1, restarts + 1)} if restarts else set()


def log_counts(paths: Sequence[Path]) -> tuple[int, int]:
    """Validations taken over from a dead process, and given back after the database was
    away, as the server logs say so far."""
    taken = given = 0
    for path in paths:
        if path.exists():
            text = path.read_text(errors="replace")
            taken += text.count("validation queue: took challenge ")
            given += sum(int(n) for n in re.findall(r"validation queue: gave back (\d+) ", text))
    return taken, given


def stop_load(load: Load, threads: Sequence[threading.Thread], timeout: float) -> None:
    """Stop the load and wait (bounded) for its clients; one still running is a violation."""
    load.stop.set()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        with load.journal.lock:
            load.journal.unexpected.append(f"a client thread did not end within {timeout} s")


def replicated_round(
    args: argparse.Namespace,
    round_no: int,
    server: DrillServer,
    checker: Checker,
    rng: random.Random,
    victim: Replica | None,
) -> RoundReport:
    """A round on PostgreSQL: kill ``victim`` (None: restart the database) during the load,
    which goes on against the others; the challenges left processing must end, the killed
    replica still down; then the load is stopped (each client finishes its order), the
    victim started again, and everything checked."""
    journal = checker.journal
    before = (len(journal.accounts), len(journal.orders), len(journal.certs))
    invalid_before = journal.invalid_on_purpose
    delay = rng.uniform(args.min_delay, args.max_delay)
    kind = "replica_kill" if victim is not None else "database_restart"
    target = victim.name if victim is not None else "postgresql"
    report = RoundReport(round_no, round(delay, 3), kind, target)
    load = Load(server, checker.responder, journal, round_no)
    journal.interrupted.clear()
    journal.refused = 0
    journal.slowest = 0.0
    with server.failover_lock:
        server.failover.clear()
    threads = run_load(load, args.clients, args.public_clients, rng)
    time.sleep(delay)
    logs = [r.log_path for r in server.replicas]
    counted = [r.log_path for r in server.replicas if r is not victim]
    taken_before, given_before = log_counts(counted)
    if victim is not None:
        load.killed_at = time.monotonic()
        report.check("process_group_dead", [f"pid {pid} still runs" for pid in victim.kill()])
        event_at = datetime.now(UTC)
        others = [r for r in server.replicas if r is not victim]
        unhealthy = []
        for replica in others:
            try:
                replica.wait_healthy(time.monotonic() + 10)
            except (RuntimeError, TimeoutError) as exc:
                unhealthy.append(str(exc))
        report.check("survivor_serves", unhealthy)
    else:
        assert server.postgres is not None
        began = time.monotonic()
        server.postgres.restart(down_for=args.database_down)
        event_at = datetime.now(UTC)
        unhealthy = []
        for replica in server.replicas:
            try:
                replica.wait_healthy(began + args.startup_timeout)
            except (RuntimeError, TimeoutError) as exc:
                unhealthy.append(str(exc))
        report.restart_s = round(time.monotonic() - began, 2)
        report.check("replicas_heal", unhealthy)
    checks_began = time.monotonic()
    assert server.database_url
    crash = read_live_state(server.database_url)
    report.processing_challenges_at_kill = len(crash.processing_challenges)
    # The survivors finish what the dead replica was validating (its leases are in the
    # database), before it is started again.
    report.check("challenges_resolved_in_deadline", checker.challenges(report, crash, event_at))
    checks_s = time.monotonic() - checks_began
    stop_load(load, threads, DRAIN_TIMEOUT)
    taken, given = log_counts(counted)
    report.taken_over, report.given_back = taken - taken_before, given - given_before
    checks_began = time.monotonic()
    report.interrupted = dict(journal.interrupted)
    with server.failover_lock:
        report.failover = dict(server.failover)
    report.slowest_request_s = round(journal.slowest, 2)
    checker.after_event(report, crash, logs)
    checks_s += time.monotonic() - checks_began
    if victim is not None:
        try:
            report.restart_s = round(victim.start(args.startup_timeout), 2)
        except (RuntimeError, TimeoutError) as exc:
            report.check("server_restarts", [f"{exc}; see {victim.log_path}"])
            report.fatal = True
            return report
        report.check("server_restarts", [])
    elif report.failures.get("replicas_heal"):
        report.fatal = True
        return report
    return finish_round(report, checker, crash, None, checks_s, journal, before, invalid_before)


COLUMNS = (
    "round",
    "kill@s",
    "certs",
    "+after",
    "orders",
    "cut requests",
    "slowest",
    "challenges",
    "WAL KiB",
    "restart s",
    "checks",
)


def challenges_cell(r: RoundReport) -> str:
    """Challenges left processing by the kill, and how they ended: ``2:1v1i``."""
    if not r.processing_challenges_at_kill:
        return "-"
    ends = "".join(f"{n}{status[0]}" for status, n in sorted(r.challenges_resumed.items()))
    return f"{r.processing_challenges_at_kill}:{ends}"


def row_of(r: RoundReport) -> list[str]:
    cut = ",".join(f"{k}:{v}" for k, v in sorted(r.interrupted.items())) or "-"
    # What happened when: "1.20" (the server killed), "r1@1.20" (replica 1), "db@1.20".
    what = {"server_kill": "", "database_restart": "db@"}.get(
        r.kind, f"r{r.target.rsplit('-', 1)[-1]}@"
    )
    return [
        str(r.round_no),
        f"{what}{r.kill_after_s:.2f}",
        str(r.certs_load),
        str(r.certs_resumed),
        str(r.orders_new),
        cut,
        f"{r.slowest_request_s:.2f}",
        challenges_cell(r),
        str(r.wal_bytes_at_kill // 1024) if r.kind == "server_kill" else "-",
        f"{r.restart_s:.1f}",
        f"{len(r.passed)}/{len(r.passed) + len(r.failures)}"
        + (" FAIL " + ",".join(r.failures) if r.failures else ""),
    ]


WIDTHS = (5, 7, 5, 6, 6, 30, 7, 10, 7, 9, 6)


def render(rows: list[list[str]], header: bool = True) -> str:
    """The per-round table (fixed widths, so rows printed one by one line up)."""
    table = [list(COLUMNS), *rows]
    widths = [max(w, *(len(row[i]) for row in table)) for i, w in enumerate(WIDTHS)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines if header else lines[2:])


def summary(
    args: argparse.Namespace,
    reports: list[RoundReport],
    inits: list[InitKill],
    journal: Journal,
    wall: float,
    final_orders: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """``final_orders``: the stored orders at the end, by finalization (none, valid...)."""
    violations: list[dict[str, Any]] = [
        {"round": f"init-kill-{n}", "check": "init_resumable", "problems": kill.problems}
        for n, kill in enumerate(inits, 1)
        if kill.problems
    ]
    violations += [
        {"round": r.round_no, "check": name, "problems": problems}
        for r in reports
        for name, problems in r.failures.items()
    ]
    cut: collections.Counter[str] = collections.Counter()
    ended: collections.Counter[str] = collections.Counter()
    finished: collections.Counter[str] = collections.Counter()
    failover: collections.Counter[str] = collections.Counter()
    for r in reports:
        cut.update(r.interrupted)
        ended.update(r.challenges_resumed)
        finished.update(r.orders_finished_after_restart)
        failover.update(r.failover)
    kinds = sorted({r.kind for r in reports}, key=ROUND_KINDS.index)
    replicated = args.database == "postgresql"
    return {
        "database": args.database,
        "replicas": args.replicas,
        "rounds": len(reports),
        "kills": sum(r.kind != "database_restart" for r in reports),
        "database_restarts": sum(r.kind == "database_restart" for r in reports),
        "init_kills": {
            "kills": len(inits),
            "left_a_staging_dir": sum(any(".init-" in name for name in k.left) for k in inits),
            "complete_before_the_kill": sum(k.complete for k in inits),
            "per_kill": [asdict(k) for k in inits],
        },
        "workers": args.workers,
        "clients": {"private": args.clients, "public": args.public_clients},
        "seed": args.seed,
        "certificates": {
            "received_before_a_kill": sum(1 for c in journal.certs if c.how == "load"),
            "finished_after_a_restart": sum(1 for c in journal.certs if c.how == "resumed"),
        },
        "accounts": len(journal.accounts),
        "orders_acknowledged": len(journal.orders),
        "orders_invalid_on_purpose": journal.invalid_on_purpose,
        "requests_cut_by_kills": dict(cut),
        # PostgreSQL: what the clients met and retried (connections refused by a dead
        # replica, requests cut off and sent to another, 503s waited out).
        "client_retries": dict(failover),
        "orders_by_finalization": dict(final_orders or {}),
        "challenges_processing_at_kills": sum(r.processing_challenges_at_kill for r in reports),
        "challenges_ended_after_restart": dict(ended),
        "validations_taken_over_from_killed_replicas": sum(r.taken_over for r in reports),
        "validations_given_back_after_database_restarts": sum(r.given_back for r in reports),
        "orders_finished_after_restart": dict(finished),
        "checks": {
            "per_round": (
                {kind: len(round_checks(kind)) for kind in kinds} if replicated else len(CHECKS)
            ),
            "passed": sum(len(r.passed) for r in reports),
            "failed": sum(len(r.failures) for r in reports),
        },
        "checks_ran": {kind: list(round_checks(kind)) for kind in kinds},
        "checks_skipped": dict(SQLITE_FILE_CHECKS) if replicated else {},
        "violations": violations,
        "slowest_request_s": max((r.slowest_request_s for r in reports), default=0.0),
        "restart_s_max": max((r.restart_s for r in reports), default=0.0),
        "restart_s_mean": round(sum(r.restart_s for r in reports) / max(1, len(reports)), 2),
        "checks_s_mean": round(sum(r.checks_s for r in reports) / max(1, len(reports)), 2),
        "wall_time_s": round(wall, 1),
        "per_round": [asdict(r) for r in reports],
    }


def drill(
    args: argparse.Namespace,
    reports: list[RoundReport],
    inits: list[InitKill],
    journal: Journal,
    final_orders: dict[str, int] | None = None,
) -> None:
    """Init, the init kills, then ``args.rounds`` rounds; the lists fill as they go (and are
    kept on an abort). ``final_orders`` is filled with the stored orders by finalization."""
    rng = random.Random(args.seed)
    postgres: PostgresServer | None = None
    if args.database == "postgresql":
        if not postgres_available():
            raise RuntimeError("--database postgresql needs Debian's PostgreSQL, run as root")
        postgres = PostgresServer().start()  # under /tmp: the postgres user must reach it
    try:
        _drill(args, reports, inits, journal, rng, postgres, final_orders)
    finally:
        if postgres is not None:
            if any(r.failures for r in reports):
                print(f"PostgreSQL's log: {postgres.log_tail()}", file=sys.stderr)
            postgres.close()


def _drill(
    args: argparse.Namespace,
    reports: list[RoundReport],
    inits: list[InitKill],
    journal: Journal,
    rng: random.Random,
    postgres: PostgresServer | None,
    final_orders: dict[str, int] | None,
) -> None:
    server = DrillServer(
        args.workdir, args.workers, args.validation_timeout, postgres, args.replicas
    )
    restarts = database_restart_rounds(args.rounds, args.database_restarts)
    on = f"{args.replicas} replicas on PostgreSQL" if postgres is not None else "SQLite"
    print(
        f"crash drill: {args.rounds} rounds ({len(restarts)} database restarts), {on}, "
        f"seed {args.seed}, in {args.workdir}",
        flush=True,
    )
    init_seconds = server.init()
    for n, kill in enumerate(kill_inits(args.init_kills, args.workdir, init_seconds, rng), 1):
        inits.append(kill)
        done = "complete, usable" if kill.complete else f"left {kill.left}, the next init ok"
        outcome = "; ".join(kill.problems) or done
        print(f"init kill {n}: after {kill.kill_after_s:.2f} s: {outcome}", flush=True)
    web = responder(server.acme.http01_port, rng.random())
    checker = Checker(server, web, journal)
    kills = 0
    try:
        server.start(args.startup_timeout)
        print(render([]), flush=True)
        for round_no in range(1, args.rounds + 1):
            if postgres is None:
                report = one_round(args, round_no, server, checker, rng)
            elif round_no in restarts:
                report = replicated_round(args, round_no, server, checker, rng, None)
            else:
                victim = server.replicas[kills % len(server.replicas)]  # each in turn
                kills += 1
                report = replicated_round(args, round_no, server, checker, rng, victim)
            reports.append(report)
            print(render([row_of(report)], header=False), flush=True)
            for name, problems in report.failures.items():
                for problem in problems[:5]:
                    print(f"    {name}: {problem}", flush=True)
            if report.fatal:
                break
        if final_orders is not None:
            with reading(server.db) as conn:
                query = select(orders.c.finalization, func.count()).group_by(orders.c.finalization)
                final_orders.update({str(k): int(n) for k, n in conn.execute(query)})
    finally:
        server.stop()
        web.close()
    # The last runs ended with SIGTERM, not a kill: their logs are read here.
    if reports:
        found = checker.log_problems([r.log_path for r in server.replicas])
        if found:
            last = reports[-1]
            with contextlib.suppress(ValueError):
                last.passed.remove("server_log_clean")
            last.failures.setdefault("server_log_clean", []).extend(found)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="kills (default 20)")
    parser.add_argument("--clients", type=int, default=2, help="private-endpoint client threads")
    parser.add_argument("--public-clients", type=int, default=2, help="http-01 client threads")
    parser.add_argument("--min-delay", type=float, default=0.3, help="earliest kill, s")
    parser.add_argument("--max-delay", type=float, default=3.0, help="latest kill, s")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument(
        "--init-kills", type=int, default=5, help="kill -9 server init this many times first"
    )
    parser.add_argument(
        "--validation-timeout",
        type=int,
        default=8,
        help="http-01 deadline, s (default 8: longer than a restart, so a validation the kill "
        "left processing is usually resumed and completed; a shorter one ends it invalid)",
    )
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything here")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="sqlite (default): one server, killed each round; postgresql: replicas on a "
        "private PostgreSQL cluster, one killed each round, or the database restarted",
    )
    parser.add_argument(
        "--replicas", type=int, default=None, help="servers sharing PostgreSQL (default 2)"
    )
    parser.add_argument(
        "--database-restarts",
        type=int,
        default=None,
        help="rounds that restart PostgreSQL instead of killing a replica, spread evenly "
        "(default: every third round)",
    )
    parser.add_argument("--database-down", type=float, default=1.0, help="PostgreSQL's downtime, s")
    args = parser.parse_args(argv)
    if args.rounds < 1 or min(args.clients, args.public_clients, args.init_kills) < 0:
        parser.error("--rounds must be positive, the counts not negative")
    if not 0 < args.min_delay <= args.max_delay:
        parser.error("need 0 < --min-delay <= --max-delay")
    if args.database == "sqlite":
        if args.replicas not in (None, 1) or args.database_restarts:
            parser.error("--replicas and --database-restarts need --database postgresql")
        args.replicas, args.database_restarts = 1, 0
    else:
        args.replicas = 2 if args.replicas is None else args.replicas
        if args.database_restarts is None:
            args.database_restarts = args.rounds // 3
        if args.replicas < 2:
            parser.error("--database postgresql needs --replicas 2 or more")
        if not 0 <= args.database_restarts <= args.rounds:
            parser.error("--database-restarts must be between 0 and --rounds")
        if args.database_down < 0:
            parser.error("--database-down must not be negative")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    keep = args.workdir is not None
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crash-drill-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    reports: list[RoundReport] = []
    inits: list[InitKill] = []
    journal = Journal()
    final_orders: dict[str, int] = {}
    status = 0
    try:
        drill(args, reports, inits, journal, final_orders)
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        print(f"crash drill aborted: {exc}", file=sys.stderr)
        status = 2
    document = summary(args, reports, inits, journal, time.monotonic() - began, final_orders)
    print()
    print(render([row_of(r) for r in reports]))
    print()
    print(json.dumps({k: v for k, v in document.items() if k != "per_round"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2, default=str))
    if status == 0 and (document["violations"] or len(reports) < args.rounds):
        status = 1
    if status == 0 and not keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    elif not keep:
        print(f"the drill's state is kept in {args.workdir}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
