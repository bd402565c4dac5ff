"""Side-by-side issuance benchmark: acmefleet vs Debian's pebble, in one run.

    .venv/bin/python benchmarks/bench_issuance.py [--duration 10] [--concurrency 1,8]
        [--validation none,http-01,dns-01] [--only acmefleet|pebble] [--count N]
        [--timeout 30] [--workers N] [--database sqlite|postgresql] [--replicas N]
        [--json FILE]

For every validation mode, concurrency level and server: one EAB account per worker thread
(each with its own keep-alive client), then each worker loops newOrder -> POST-as-GET
authorizations (answering the mode's challenge when pending) -> finalize with a fresh P-256
CSR -> poll -> download, for a name never used before (so no authorization can be reused).

Validation modes:

* ``none``: acmefleet's private endpoint (no domain validation) against pebble with
  ``PEBBLE_VA_ALWAYS_VALID=1``: the protocol and issuance cost alone.
* ``http-01``: acmefleet's public endpoint and pebble both really validate: they fetch the key
  authorization from the benchmark's responder on a loopback port (acmefleet through
  ``[validation] http01_port`` and ``hosts``; pebble through ``httpPort``, resolving the name
  in Debian's knotd through ``-dnsserver``).
* ``dns-01``: the client sets ``_acme-challenge`` TXT records in knotd by RFC 2136 with TSIG
  (and removes them afterwards); acmefleet (``dns_resolvers``) and pebble (``-dnsserver``)
  ask that knotd.

Pebble always runs with ``PEBBLE_VA_NOSLEEP=1`` and ``PEBBLE_WFE_NONCEREJECT=0``.  Server CPU
is read from /proc for the server's process tree, knotd's separately.  Every wait is bounded:
a hung server is reported as hangs, and the script always terminates on its own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.public_validation import SUBZONE, Counts, ValidationWorld  # noqa: E402
from tests.support.acme_client import (  # noqa: E402
    AcmeClient,
    AcmeError,
    make_csr,
    retry_after_seconds,
)
from tests.support.pebble import PebbleServer, make_eab_keys  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.procs import (  # noqa: E402
    die_with_parent,
    free_ports,
    terminate_group,
    tree_cpu_seconds,
    wait_for_url,
)

ORG = "bench"
DOMAIN = "bench.example.com"
SERVERS = ("acmefleet", "pebble")
MODES = ("none", "http-01", "dns-01")
CLI_TIMEOUT = 120.0
FINAL_AUTHZ = ("valid", "invalid", "deactivated", "expired", "revoked")


# ---------------------------------------------------------------- servers

@dataclass
class Target:
    """A running ACME server under test."""

    name: str
    validation: str
    directory_url: str
    ca_bundle: Path
    pid: int
    next_eab: Callable[[], tuple[str, str]]
    stop: Callable[[], None]
    log: Path
    # More processes whose CPU is the server's: further replicas, the database server.
    extra_pids: tuple[int, ...] = ()
    # Replicas' ports: each client is pinned to one in turn (empty: the directory's).
    ports: tuple[int, ...] = ()

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(pid) for pid in (self.pid, *self.extra_pids))


class PinnedTransport(httpx.HTTPTransport):
    """Sends every request of a client to one replica's port (URLs name the first's), as
    a load balancer with sticky connections would."""

    def __init__(self, port: int, ca_bundle: Path) -> None:
        super().__init__(verify=ssl.create_default_context(cafile=str(ca_bundle)))
        self.port = port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(port=self.port)
        with _sent_lock:
            SENT_TO_REPLICA[self.port] += 1
        return super().handle_request(request)


#: Requests per replica port (pinned clients only), for the report.
SENT_TO_REPLICA: Counter[int] = Counter()
_sent_lock = threading.Lock()


#: No authorization reuse (pebble's default reuses half of the valid ones): the benchmark's
#: names are all fresh, so none could be reused, and 0 spares pebble the scan of all its
#: authorizations that looks for one on every newOrder.
PEBBLE_ENV = {"PEBBLE_AUTHZREUSE": "0"}


def start_pebble(workdir: Path, accounts: int, mode: str,
                 world: ValidationWorld | None) -> Target:
    """Start pebble with one EAB key per account; validating for real unless ``mode`` is none."""
    if world is None:
        server = PebbleServer(workdir / "pebble", make_eab_keys(accounts), env=PEBBLE_ENV)
    else:
        server = PebbleServer(workdir / f"pebble-{mode}", make_eab_keys(accounts), validate=True,
                              dns_server=world.dns_address, env=PEBBLE_ENV,
                              extra_config={"httpPort": world.http.port})
    server.start()
    return Target("pebble", mode, server.directory_url, server.ca_bundle, server.pid,
                  server.next_eab, server.stop, server.log_path)


def acmefleet_exe() -> Path:
    """``acmefleet`` next to the running interpreter (the venv's bin/)."""
    return Path(sys.executable).parent / "acmefleet"


def this_checkout_env() -> dict[str, str]:
    """The environment for acmefleet processes: this checkout's package first on the path,
    whatever checkout the venv's ``acmefleet`` was installed from."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def run_cli(args: Sequence[str], cwd: Path) -> str:
    """Run the acmefleet CLI; return stdout, raise with its output on failure."""
    command = [str(acmefleet_exe()), *args]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, check=False, stdin=subprocess.DEVNULL,
                              env=this_checkout_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def create_eabs(data_dir: Path, cwd: Path, count: int, endpoint: str) -> list[dict[str, Any]]:
    """``count`` single-use EAB credentials on ``endpoint``."""
    eabs = []
    for _ in range(count):
        out = run_cli(["admin", "eab", "create", "--org", ORG, "--endpoint", endpoint,
                       "--json", "--data-dir", str(data_dir)], cwd)
        eabs.append(json.loads(out))
    return eabs


def raise_rate_limits(config: Path) -> None:
    """Limits far above what a run reaches: pebble has none, and a refusal would end the
    run; the counting itself (one upsert per newOrder and newAccount) stays measured."""
    text = config.read_text()
    for name in ("new_accounts_per_address", "new_orders_per_account",
                 "new_orders_per_organisation", "failed_validations_per_account"):
        text = re.sub(rf"^{name} = .*$", f'{name} = "100000000/1h"', text, flags=re.M)
    text = re.sub(r"^pending_authorizations_per_account = .*$",
                  "pending_authorizations_per_account = 100000000", text, flags=re.M)
    config.write_text(text)


def point_validation_at(config: Path, world: ValidationWorld) -> None:
    """Let the public endpoint validate against the benchmark's responder and knotd: every
    name maps to 127.0.0.1 (which must then be allowed), http-01 to the responder's port."""
    text = config.read_text()
    replacements = {
        "http01_port": str(world.http.port),
        "dns_resolvers": f'["{world.dns_address}"]',
        "allow_private_addresses": "true",
    }
    for name, value in replacements.items():
        text, found = re.subn(rf"^{name} = .*$", f"{name} = {value}", text, flags=re.M)
        if found != 1:
            raise RuntimeError(f"no {name} setting in {config}")
    text = text.replace("[validation.hosts]\n", '[validation.hosts]\n"*" = "127.0.0.1"\n')
    config.write_text(text)


def start_acmefleet(workdir: Path, accounts: int, workers: int | None,
                    run_args: Sequence[str], startup_timeout: float, mode: str = "none",
                    world: ValidationWorld | None = None, database: str = "sqlite",
                    replicas: int = 1) -> Target:
    """Initialise a data dir, create org/domain/EABs, run the server until ready.

    Mode none uses the private endpoint; the others the public one, validating against
    ``world``. ``database`` postgresql: a private PostgreSQL cluster holds the state (its
    CPU counts as the server's), and ``replicas`` servers share it, each from a copy of the
    data directory on a port of its own."""
    postgres: PostgresServer | None = None
    database_args: list[str] = []
    if database == "postgresql":
        postgres = PostgresServer().start()
        database_args = ["--database-url", postgres.create_database("acmefleet")]
    # benchmarks/soak.py reads <workdir>/acmefleet/data.
    home = workdir / ("acmefleet" if world is None else f"acmefleet-{mode}")
    data_dir = home / "data"
    home.mkdir(parents=True)
    port, pki_port = free_ports(2)
    run_cli(["server", "init", "--data-dir", str(data_dir),
             "--base-url", f"https://localhost:{port}",
             "--pki-listen", f"127.0.0.1:{pki_port}", *database_args], home)  # 8556 may be taken
    raise_rate_limits(data_dir / "config.toml")
    if world is not None:
        point_validation_at(data_dir / "config.toml", world)
    run_cli(["admin", "org", "create", ORG, "--data-dir", str(data_dir)], home)
    run_cli(["admin", "domain", "add", ORG, DOMAIN, "--data-dir", str(data_dir)], home)
    eabs = create_eabs(data_dir, home, accounts, "private" if world is None else "public")
    ca_bundle = home / eabs[0]["ca_bundle"]  # absolute paths stay absolute
    ports = [port, *free_ports(replicas - 1)]
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    for number, replica_port in enumerate(ports):
        replica_dir = data_dir if number == 0 else home / f"data-{number}"
        if number:
            shutil.copytree(data_dir, replica_dir)
        command = [str(acmefleet_exe()), "server", "run", "--data-dir", str(replica_dir),
                   "--listen", f"127.0.0.1:{replica_port}"]
        if number:
            command.append("--no-pki-listen")
        if workers:
            command += ["--workers", str(workers)]
        logs.append((home / ("server.log" if number == 0 else f"server-{number}.log")).open("ab"))
        procs.append(subprocess.Popen([*command, *run_args], cwd=home, stdin=subprocess.DEVNULL,
                                      stdout=logs[-1], stderr=subprocess.STDOUT,
                                      start_new_session=True, env=this_checkout_env(),
                                      preexec_fn=die_with_parent))  # noqa: PLW1509
    log_path = home / "server.log"

    def stop() -> None:
        for proc in procs:
            terminate_group(proc)
        for log in logs:
            log.close()
        if postgres is not None:
            postgres.close()

    try:
        for proc, replica_port in zip(procs, ports, strict=True):
            directory = eabs[0]["directory"].replace(f":{port}/", f":{replica_port}/", 1)
            wait_for_url(directory, ca_bundle, proc, startup_timeout)
    except (RuntimeError, TimeoutError) as exc:
        stop()
        raise RuntimeError(f"acmefleet server did not start: {exc}\n{tail(log_path)}") from exc
    credentials = iter([(e["kid"], e["hmac_key"]) for e in eabs])
    extra = [p.pid for p in procs[1:]] + ([postgres.proc.pid] if postgres and postgres.proc else [])
    return Target("acmefleet", mode, eabs[0]["directory"], ca_bundle, procs[0].pid,
                  lambda: next(credentials), stop, log_path, tuple(extra),
                  tuple(ports) if replicas > 1 else ())


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a log file."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------- workload

@dataclass
class WorkerStats:
    """What one worker thread observed (requests and polls: measured issuances only)."""

    latencies: list[float] = field(default_factory=list)
    hangs: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)
    finished: float | None = None
    requests: int = 0
    retry_after: int = 0  # polls answered with a Retry-After header
    authz_already_valid: int = 0  # authorizations valid before any challenge was answered
    publish_seconds: float = 0.0  # the client's own DNS updates / responder bookkeeping

    def record_error(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(f"{type(exc).__name__}: {str(exc)[:300]}")

    def start_measuring(self) -> None:
        self.requests = self.retry_after = self.authz_already_valid = 0
        self.publish_seconds = 0.0


@dataclass
class PhaseRaw:
    """Raw observations of one measured phase."""

    server: str
    validation: str
    concurrency: int
    stats: list[WorkerStats]
    elapsed: float
    server_cpu: float
    client_cpu: float
    dns_cpu: float
    seen: Counts | None  # what the responder and knotd were asked during the phase
    stuck: int


@dataclass
class PhaseResult:
    """Figures for one (validation mode, server, concurrency), pooled over rounds."""

    validation: str
    server: str
    concurrency: int
    rounds: int
    issued: int
    elapsed_s: float
    certs_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    requests: int
    requests_per_cert: float | None
    server_cpu_ms_per_cert: float | None
    server_cpu_ms_per_request: float | None
    client_cpu_ms_per_cert: float | None
    dns_cpu_ms_per_cert: float | None
    client_publish_ms_per_cert: float | None  # setting + removing the TXT record (knotd's pace)
    validations: int | None  # key authorizations served (http-01) / TXT queries (dns-01)
    validations_per_cert: float | None
    seen: dict[str, int] | None
    retry_after_polls: int
    authz_already_valid: int
    hangs: int
    errors: int
    stuck_workers: int
    error_samples: list[str]


class Quota:
    """Thread-safe countdown of issuances left (None: unlimited)."""

    def __init__(self, count: int | None) -> None:
        self._left = count
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self._left is None:
            return True
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


class Workload:
    """Shared settings of one phase's workers, and the issuance flow they run."""

    def __init__(self, names: Iterator[str], args: argparse.Namespace, quota: Quota,
                 ready: threading.Barrier, mode: str, world: ValidationWorld | None) -> None:
        self.names = names
        self.timeout: float = args.timeout
        self.poll_interval: float = args.poll_interval
        self.honour_retry_after = args.retry_after == "honour"
        self.quota = quota
        # Workers meet at ``ready`` after warming up; the counters are read, then ``go`` is set:
        # nothing of the measured phase happens before its "before" readings.
        self.ready = ready
        self.go = threading.Event()
        self.warmup: int = args.warmup
        self.mode = mode
        self.world = world
        self._lock = threading.Lock()
        self.stop_at = float("inf")

    def next_name(self) -> str:
        with self._lock:
            return next(self.names)

    def issue(self, client: AcmeClient, stats: WorkerStats) -> float | None:
        """One full issuance; its latency in seconds, or None after a hang/error."""
        began = time.perf_counter()
        try:
            self.issue_one(client, self.next_name(), stats, time.monotonic() + self.timeout)
        except (TimeoutError, httpx.TimeoutException) as exc:
            stats.hangs += 1
            if len(stats.samples) < 3:
                stats.samples.append(f"hang: {type(exc).__name__}: {str(exc)[:300]}")
        except Exception as exc:
            stats.record_error(exc)
        else:
            return time.perf_counter() - began
        return None

    def issue_one(self, client: AcmeClient, name: str, stats: WorkerStats,
                  deadline: float) -> None:
        """newOrder -> authorizations -> finalize -> poll -> download, for ``name``."""
        created = client.new_order([name])
        if created.status_code != 201:
            raise AcmeError("newOrder failed", created)
        order_url, order = created.headers["Location"], created.json()
        for authz_url in order["authorizations"]:
            self.authorize(client, authz_url, stats, deadline)
        if order["status"] == "pending":
            order = self.poll(client, order_url, ("ready", "valid", "invalid"), stats, deadline)
        if order["status"] == "ready":
            csr_der, _ = make_csr([name])
            finalized = client.finalize(str(order["finalize"]), csr_der)
            if finalized.status_code != 200:
                raise AcmeError("finalize failed", finalized)
            order = finalized.json()
        if order["status"] == "processing":
            order = self.poll(client, order_url, ("valid", "invalid"), stats, deadline)
        if order["status"] != "valid":
            raise AcmeError(f"order ended {order['status']}: {order}")
        client.download_certificate(order["certificate"])

    def authorize(self, client: AcmeClient, authz_url: str, stats: WorkerStats,
                  deadline: float) -> None:
        """Make one authorization valid: publish the key authorization, answer, poll."""
        response = client.get(authz_url)
        if response.status_code != 200:
            raise AcmeError("authorization fetch failed", response)
        authz = response.json()
        if authz["status"] == "valid":
            stats.authz_already_valid += 1
            return
        if authz["status"] != "pending":
            raise AcmeError(f"authorization {authz_url} is {authz['status']}", response)
        kind = "dns-01" if self.mode == "dns-01" else "http-01"
        offered = [c for c in authz["challenges"] if c.get("type") == kind]
        if not offered:
            raise AcmeError(f"no {kind} challenge offered: {authz}")
        token = str(offered[0]["token"])
        name = str(authz["identifier"]["value"])
        began = time.perf_counter()
        self.publish(name, token, client.key.key_authorization(token))
        stats.publish_seconds += time.perf_counter() - began
        try:
            answer = client.answer_challenge(offered[0]["url"])
            if answer.status_code != 200:
                raise AcmeError("challenge answer failed", answer)
            authz = self.poll(client, authz_url, FINAL_AUTHZ, stats, deadline)
        finally:
            began = time.perf_counter()
            self.withdraw(name, token)
            stats.publish_seconds += time.perf_counter() - began
        if authz["status"] != "valid":
            raise AcmeError(f"authorization ended {authz['status']}: {authz}")

    def publish(self, name: str, token: str, key_authorization: str) -> None:
        if self.world is None:
            return  # mode none: nothing is fetched
        if self.mode == "dns-01":
            self.world.dns.publish(name, key_authorization)
        else:
            self.world.http.publish(token, key_authorization)

    def withdraw(self, name: str, token: str) -> None:
        """Clean up as a client does: the TXT record goes (one more RFC 2136 update)."""
        if self.world is None:
            return
        if self.mode == "dns-01":
            self.world.dns.withdraw(name)
        else:
            self.world.http.withdraw(token)

    def poll(self, client: AcmeClient, url: str, until: Sequence[str], stats: WorkerStats,
             deadline: float) -> dict[str, Any]:
        """POST-as-GET ``url`` until its status is in ``until``, at most until ``deadline``.

        Every ``--poll-interval``, or after the server's Retry-After with
        ``--retry-after honour``; the Retry-After headers seen are counted either way."""
        while True:
            response = client.get(url)
            if response.status_code != 200:
                raise AcmeError(f"polling {url} failed", response)
            body: dict[str, Any] = response.json()
            if body.get("status") in until:
                return body
            wait = self.poll_interval
            if "Retry-After" in response.headers:
                stats.retry_after += 1
                if self.honour_retry_after:
                    wait = retry_after_seconds(response, self.poll_interval)
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"{url} still {body.get('status')!r} at the deadline")
            time.sleep(wait)


def worker(client: AcmeClient, work: Workload, stats: WorkerStats) -> None:
    """Warm up, wait for the start signal, then issue until time or quota runs out."""
    for _ in range(work.warmup):
        work.issue(client, stats)
    try:
        work.ready.wait(timeout=work.timeout * (work.warmup + 1) + 30)
    except threading.BrokenBarrierError:
        return
    stats.start_measuring()
    if not work.go.wait(timeout=60):
        return
    while time.monotonic() < work.stop_at and work.quota.take():
        latency = work.issue(client, stats)
        if latency is not None:
            stats.latencies.append(latency)
    stats.finished = time.perf_counter()


def count_requests(client: AcmeClient, stats: WorkerStats) -> None:
    """Count every HTTP request ``client`` sends into ``stats.requests``."""
    def hook(_request: httpx.Request) -> None:
        stats.requests += 1

    hooks = client.http.event_hooks
    client.http.event_hooks = {"request": [*hooks.get("request", []), hook],
                               "response": list(hooks.get("response", []))}


_pinned = itertools.count()


def open_account(target: Target, timeout: float) -> AcmeClient:
    """A client with a fresh EAB-bound account on ``target`` (on the next replica in turn)."""
    transport = None
    if target.ports:
        port = target.ports[next(_pinned) % len(target.ports)]
        transport = PinnedTransport(port, target.ca_bundle)
    client = AcmeClient(target.directory_url, target.ca_bundle, timeout=timeout,
                        poll_interval=0.01, transport=transport)
    response = client.new_account(eab=target.next_eab())
    if response.status_code not in (200, 201):
        client.close()
        raise RuntimeError(f"{target.name} newAccount failed: {response.status_code} "
                           f"{response.text[:500]}")
    return client


def open_accounts(target: Target, count: int, timeout: float) -> list[AcmeClient]:
    """``count`` clients with their own accounts (all closed if one fails)."""
    clients: list[AcmeClient] = []
    try:
        for _ in range(count):
            clients.append(open_account(target, timeout))
    except BaseException:
        for client in clients:
            client.close()
        raise
    return clients


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: Sequence[float], q: int) -> float | None:
    """``q``-th percentile (inclusive method) in ms, None when empty."""
    if not values:
        return None
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def per_cert(seconds: float, issued: int) -> float | None:
    return seconds * 1000 / issued if issued else None


def run_phase(target: Target, concurrency: int, args: argparse.Namespace,
              names: Iterator[str], world: ValidationWorld | None) -> PhaseRaw:
    """Measure ``concurrency`` workers issuing against ``target``."""
    clients = open_accounts(target, concurrency, args.timeout)
    barrier = threading.Barrier(concurrency + 1)
    work = Workload(names, args, Quota(args.count), barrier, target.validation, world)
    stats = [WorkerStats() for _ in clients]
    for client, stat in zip(clients, stats, strict=True):
        count_requests(client, stat)
    threads = [threading.Thread(target=worker, args=(c, work, s), daemon=True,
                                name=f"{target.name}-{i}")
               for i, (c, s) in enumerate(zip(clients, stats, strict=True))]
    for thread in threads:
        thread.start()
    try:
        barrier.wait(timeout=args.timeout * (args.warmup + 1) + 30)
    except threading.BrokenBarrierError:
        barrier.abort()
    seen_before = world.counts() if world else None
    dns_before = world.dns_cpu_seconds() if world else 0.0
    cpu_before, client_before = target.cpu_seconds(), client_cpu_seconds()
    began = time.perf_counter()
    work.stop_at = time.monotonic() + (args.duration if args.count is None else args.max_time)
    work.go.set()
    stuck = join_all(threads, work.stop_at + 2 * args.timeout + 10)
    ended = time.perf_counter()
    cpu_used = target.cpu_seconds() - cpu_before
    client_used = client_cpu_seconds() - client_before
    dns_used = world.dns_cpu_seconds() - dns_before if world else 0.0
    seen = world.counts().minus(seen_before) if world and seen_before else None
    if not stuck:
        finished = [s.finished for s in stats if s.finished is not None]
        ended = max(finished, default=ended)
        for client in clients:
            client.close()
    return PhaseRaw(target.name, target.validation, concurrency, stats, ended - began,
                    cpu_used, client_used, dns_used, seen, stuck)


def unanswered_phase(target: Target, concurrency: int, exc: BaseException) -> PhaseRaw:
    """A phase that could not start: the server did not answer newAccount."""
    stats = WorkerStats(hangs=1, samples=[f"no new account: {type(exc).__name__}: {exc}"])
    return PhaseRaw(target.name, target.validation, concurrency, [stats], 0.0, 0.0, 0.0, 0.0,
                    None, 0)


def join_all(threads: list[threading.Thread], deadline: float) -> int:
    """Join threads until ``deadline`` (monotonic); return how many are still running."""
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return sum(thread.is_alive() for thread in threads)


def validations_of(mode: str, seen: Counts | None) -> int | None:
    """The evidence of real validation: key authorizations the responder served (http-01),
    TXT queries knotd answered (dns-01)."""
    if seen is None:
        return None
    return seen.dns_txt if mode == "dns-01" else seen.http_served


def summarize(raws: Sequence[PhaseRaw]) -> PhaseResult:
    """Pool the phases of one (mode, server, concurrency) into figures."""
    stats = [s for raw in raws for s in raw.stats]
    latencies = sorted(itertools.chain.from_iterable(s.latencies for s in stats))
    issued, elapsed = len(latencies), sum(raw.elapsed for raw in raws)
    stuck = sum(raw.stuck for raw in raws)
    requests = sum(s.requests for s in stats)
    server_cpu = sum(raw.server_cpu for raw in raws)
    mode = raws[0].validation
    seens = [raw.seen for raw in raws if raw.seen is not None]
    seen = None
    if seens:
        seen = Counts()
        for one in seens:
            seen = Counts(*(a + b for a, b in zip(seen.astuple(), one.astuple(), strict=True)))
    validations = validations_of(mode, seen)
    return PhaseResult(
        validation=mode, server=raws[0].server, concurrency=raws[0].concurrency,
        rounds=len(raws), issued=issued, elapsed_s=round(elapsed, 3),
        certs_per_s=issued / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        requests=requests, requests_per_cert=requests / issued if issued else None,
        server_cpu_ms_per_cert=per_cert(server_cpu, issued),
        server_cpu_ms_per_request=per_cert(server_cpu, requests),
        client_cpu_ms_per_cert=per_cert(sum(raw.client_cpu for raw in raws), issued),
        dns_cpu_ms_per_cert=per_cert(sum(raw.dns_cpu for raw in raws), issued)
        if mode != "none" else None,
        client_publish_ms_per_cert=per_cert(sum(s.publish_seconds for s in stats), issued)
        if mode == "dns-01" else None,
        validations=validations,
        validations_per_cert=validations / issued if validations is not None and issued
        else None,
        seen=asdict(seen) if seen is not None else None,
        retry_after_polls=sum(s.retry_after for s in stats),
        authz_already_valid=sum(s.authz_already_valid for s in stats),
        hangs=sum(s.hangs for s in stats) + stuck, errors=sum(s.errors for s in stats),
        stuck_workers=stuck,
        error_samples=list(itertools.chain.from_iterable(s.samples for s in stats))[:5],
    )


# ---------------------------------------------------------------- report

COLUMNS = ("validation", "server", "conc", "certs", "certs/s", "p50 ms", "p95 ms", "p99 ms",
           "req/cert", "srv CPU ms/cert", "srv CPU ms/req", "valid./cert", "DNS CPU ms/cert",
           "TXT upd. ms/cert", "hangs", "errors")
RATIO_KEYS = ("certs_per_s", "p50_ms", "p95_ms", "p99_ms", "requests_per_cert",
              "server_cpu_ms_per_cert", "server_cpu_ms_per_request")


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def result_row(r: PhaseResult) -> list[str]:
    return [r.validation, r.server, str(r.concurrency), str(r.issued), fmt(r.certs_per_s),
            fmt(r.p50_ms), fmt(r.p95_ms), fmt(r.p99_ms), fmt(r.requests_per_cert),
            fmt(r.server_cpu_ms_per_cert), fmt(r.server_cpu_ms_per_request, 2),
            fmt(r.validations_per_cert, 2), fmt(r.dns_cpu_ms_per_cert, 2),
            fmt(r.client_publish_ms_per_cert), str(r.hangs), str(r.errors)]


def ratios(results: list[PhaseResult]) -> list[dict[str, Any]]:
    """acmefleet/pebble ratios per validation mode and concurrency level."""
    found = {(r.validation, r.server, r.concurrency): r for r in results}
    out = []
    for mode, conc in sorted({(r.validation, r.concurrency) for r in results},
                             key=lambda key: (MODES.index(key[0]), key[1])):
        ours, theirs = found.get((mode, "acmefleet", conc)), found.get((mode, "pebble", conc))
        if ours is None or theirs is None:
            continue
        row: dict[str, Any] = {"validation": mode, "concurrency": conc}
        for key in RATIO_KEYS:
            row[key] = ratio(getattr(ours, key), getattr(theirs, key))
        out.append(row)
    return out


def ratio_row(r: dict[str, Any]) -> list[str]:
    def x(key: str) -> str:
        return "-" if r[key] is None else f"{r[key]:.2f}x"
    return [r["validation"], "acmefleet/pebble", str(r["concurrency"]), "", x("certs_per_s"),
            x("p50_ms"), x("p95_ms"), x("p99_ms"), x("requests_per_cert"),
            x("server_cpu_ms_per_cert"), x("server_cpu_ms_per_request"), "", "", "", "", ""]


def render(rows: list[list[str]]) -> str:
    table = [list(COLUMNS), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def report(results: list[PhaseResult], args: argparse.Namespace) -> dict[str, Any]:
    """Print the table (and error samples); return the JSON document."""
    ratio_list = ratios(results)
    rows = [result_row(r) for r in sorted(
        results, key=lambda r: (MODES.index(r.validation), r.concurrency, r.server))]
    print()
    print(render(rows + [ratio_row(r) for r in ratio_list]))
    for r in results:
        for sample in r.error_samples:
            print(f"  [{r.validation} {r.server} c={r.concurrency}] {sample}")
    return {
        "settings": {key: value for key, value in vars(args).items() if key != "json"},
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 "python": platform.python_version(), "clk_tck": os.sysconf("SC_CLK_TCK")},
        "results": [asdict(r) for r in results],
        "ratios_acmefleet_over_pebble": ratio_list,
        "requests_by_replica_port": {str(k): v for k, v in sorted(SENT_TO_REPLICA.items())},
    }


# ---------------------------------------------------------------- main

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per phase (default 10)")
    parser.add_argument("--count", type=int, default=None,
                        help="issuances per phase instead of --duration")
    parser.add_argument("--max-time", type=float, default=300.0,
                        help="cap on a --count phase, seconds (default 300)")
    parser.add_argument("--concurrency", default="1,8",
                        help="comma-separated worker counts (default 1,8)")
    parser.add_argument("--validation", default="none",
                        help="comma-separated modes: none (private endpoint / pebble always "
                             "valid), http-01, dns-01 (public endpoint, real validation); "
                             "default none")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat all phases N times, flipping server order (default 1)")
    parser.add_argument("--only", choices=SERVERS, help="benchmark a single server")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="per-issuance timeout, seconds; exceeding it counts as a hang")
    parser.add_argument("--poll-interval", type=float, default=0.01,
                        help="seconds between polls of a pending resource (default 0.01)")
    parser.add_argument("--retry-after", choices=("ignore", "honour"), default="ignore",
                        help="honour the server's Retry-After when polling instead of "
                             "--poll-interval (default ignore: both servers polled alike)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured issuances per worker before each phase (default 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="passed to `acmefleet server run --workers`")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="acmefleet's store: SQLite in the data dir (default) or a private "
                             "PostgreSQL cluster, whose CPU counts as the server's")
    parser.add_argument("--replicas", type=int, default=1,
                        help="acmefleet servers sharing the PostgreSQL database, each client "
                             "pinned to one in turn (default 1)")
    parser.add_argument("--acmefleet-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `acmefleet server run` (repeatable)")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep server state/logs here (default: temporary, removed)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    args.concurrency = [int(value) for value in args.concurrency.split(",") if value.strip()]
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency needs positive integers")
    if args.replicas < 1 or (args.replicas > 1 and args.database != "postgresql"):
        parser.error("--replicas N > 1 needs --database postgresql")
    args.validation = [value.strip() for value in args.validation.split(",") if value.strip()]
    unknown = sorted(set(args.validation) - set(MODES))
    if not args.validation or unknown:
        parser.error(f"--validation takes {', '.join(MODES)}; not {', '.join(unknown)}")
    return args


def start_targets(args: argparse.Namespace, workdir: Path, mode: str,
                  world: ValidationWorld | None) -> list[Target]:
    """Start the selected servers (acmefleet first); stop them all if one fails."""
    accounts = sum(args.concurrency) * args.rounds
    starters: dict[str, Callable[[], Target]] = {
        "acmefleet": lambda: start_acmefleet(workdir, accounts, args.workers,
                                             args.acmefleet_arg, args.startup_timeout, mode,
                                             world, args.database, args.replicas),
        "pebble": lambda: start_pebble(workdir, accounts, mode, world),
    }
    targets: list[Target] = []
    try:
        for name in [args.only] if args.only else SERVERS:
            print(f"starting {name} ({mode}) ...", flush=True)
            targets.append(starters[name]())
    except BaseException:
        for target in targets:
            target.stop()
        raise
    return targets


def run_mode(args: argparse.Namespace, workdir: Path, mode: str, numbers: Iterator[int],
             world: ValidationWorld | None, pooled: dict[tuple[str, str, int], list[PhaseRaw]],
             per_round: list[dict[str, Any]]) -> None:
    """Every round and concurrency level of one validation mode, servers interleaved."""
    targets = start_targets(args, workdir, mode, world)
    # Fresh names throughout: no server can reuse an authorization.
    suffix = DOMAIN if world is None else SUBZONE
    names = (f"h{n}.{suffix}" for n in numbers)
    try:
        for round_no in range(1, args.rounds + 1):
            order = targets if round_no % 2 else targets[::-1]
            for conc in args.concurrency:
                for target in order:
                    print(f"{mode} round {round_no}: {target.name}, concurrency {conc} ...",
                          flush=True)
                    try:
                        raw = run_phase(target, conc, args, names, world)
                    except (RuntimeError, httpx.HTTPError) as exc:
                        # A server that stopped answering (pebble can, see the README):
                        # this phase is a hang, and the run goes on with the others.
                        raw = unanswered_phase(target, conc, exc)
                    pooled.setdefault((mode, target.name, conc), []).append(raw)
                    figures = summarize([raw])
                    per_round.append({"round": round_no, **asdict(figures)})
                    print(f"  {figures.issued} certs, {figures.certs_per_s:.1f}/s, "
                          f"{figures.hangs} hangs, {figures.errors} errors", flush=True)
    finally:
        for target in targets:
            target.stop()


def benchmark(args: argparse.Namespace,
              workdir: Path) -> tuple[list[PhaseResult], list[dict[str, Any]]]:
    """Run every mode; returns pooled figures and per-round ones.

    Servers are interleaved per concurrency level and their order flips every round."""
    numbers = itertools.count(1)
    pooled: dict[tuple[str, str, int], list[PhaseRaw]] = {}
    per_round: list[dict[str, Any]] = []
    for mode in args.validation:
        if mode == "none":
            run_mode(args, workdir, mode, numbers, None, pooled, per_round)
            continue
        with ValidationWorld(workdir / f"world-{mode}") as world:
            run_mode(args, workdir, mode, numbers, world, pooled, per_round)
    return [summarize(raws) for raws in pooled.values()], per_round


def unvalidated(results: Sequence[PhaseResult]) -> list[str]:
    """Phases of a validating mode where the validators asked less than once per certificate."""
    return [f"{r.validation} {r.server} c={r.concurrency}" for r in results
            if r.validation != "none" and r.issued
            and (r.validations is None or r.validations < r.issued)]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-issuance-"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    print(f"load average before: {load_before}", flush=True)
    try:
        results, per_round = benchmark(args, workdir)
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError) as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        if not args.only:
            print("(use --only pebble while acmefleet is unavailable)", file=sys.stderr)
        return 2
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    document = report(results, args)
    document["rounds"] = per_round
    document["host"]["load_average_before"] = load_before
    document["host"]["load_average_after"] = load_average()
    missing = unvalidated(results)
    document["unvalidated"] = missing
    print(f"load average before {load_before}, after {document['host']['load_average_after']}")
    for phase in missing:
        print(f"  NOT VALIDATED: {phase}: the validators asked less than once per certificate")
    if args.json:
        args.json.write_text(json.dumps(document, indent=2, default=str))
        print(f"\nfigures written to {args.json}")
    failed = missing or any(r.hangs or r.errors or not r.issued for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
