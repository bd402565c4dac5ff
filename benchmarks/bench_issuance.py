"""Side-by-side issuance benchmark: acmefleet vs Debian's pebble, in one run.

    .venv/bin/python benchmarks/bench_issuance.py [--duration 10] [--concurrency 1,8]
        [--only acmefleet|pebble] [--count N] [--timeout 30] [--workers N] [--json FILE]

For every concurrency level and server: one EAB account per worker thread
(each with its own keep-alive client), then each worker loops newOrder ->
POST-as-GET authorizations (answering http-01 when pending) -> finalize with a
fresh P-256 CSR -> poll -> download.  Server CPU is read from /proc for the
server's process group and descendants.  Every wait is bounded: a hung server
is reported as hangs, and the script always terminates on its own.
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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.acme_client import AcmeClient  # noqa: E402
from tests.support.pebble import PebbleServer, make_eab_keys  # noqa: E402
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
CLI_TIMEOUT = 120.0


# ---------------------------------------------------------------- servers

@dataclass
class Target:
    """A running ACME server under test."""

    name: str
    directory_url: str
    ca_bundle: Path
    pid: int
    next_eab: Callable[[], tuple[str, str]]
    stop: Callable[[], None]
    log: Path


def start_pebble(workdir: Path, accounts: int) -> Target:
    """Start pebble with one EAB key per account."""
    server = PebbleServer(workdir / "pebble", make_eab_keys(accounts)).start()
    return Target("pebble", server.directory_url, server.ca_bundle, server.pid,
                  server.next_eab, server.stop, server.log_path)


def acmefleet_exe() -> Path:
    """``acmefleet`` next to the running interpreter (the venv's bin/)."""
    return Path(sys.executable).parent / "acmefleet"


def run_cli(args: Sequence[str], cwd: Path) -> str:
    """Run the acmefleet CLI; return stdout, raise with its output on failure."""
    command = [str(acmefleet_exe()), *args]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def create_eabs(data_dir: Path, cwd: Path, count: int) -> list[dict[str, Any]]:
    """``count`` single-use EAB credentials on the private endpoint."""
    eabs = []
    for _ in range(count):
        out = run_cli(["admin", "eab", "create", "--org", ORG, "--endpoint", "private",
                       "--json", "--data-dir", str(data_dir)], cwd)
        eabs.append(json.loads(out))
    return eabs


def raise_rate_limits(config: Path) -> None:
    """Limits far above what a run reaches: pebble has none, and a refusal would end the
    run; the counting itself (one upsert per newOrder and newAccount) stays measured."""
    text = config.read_text()
    for name in ("new_accounts_per_address", "new_orders_per_account",
                 "new_orders_per_organisation"):
        text = re.sub(rf"^{name} = .*$", f'{name} = "100000000/1h"', text, flags=re.M)
    text = re.sub(r"^pending_authorizations_per_account = .*$",
                  "pending_authorizations_per_account = 100000000", text, flags=re.M)
    config.write_text(text)


def start_acmefleet(workdir: Path, accounts: int, workers: int | None,
                    run_args: Sequence[str], startup_timeout: float) -> Target:
    """Initialise a data dir, create org/domain/EABs, run the server until ready."""
    home = workdir / "acmefleet"
    data_dir = home / "data"
    home.mkdir(parents=True)
    port, pki_port = free_ports(2)
    run_cli(["server", "init", "--data-dir", str(data_dir),
             "--base-url", f"https://localhost:{port}",
             "--pki-listen", f"127.0.0.1:{pki_port}"], home)  # default 8556 may be taken
    raise_rate_limits(data_dir / "config.toml")
    run_cli(["admin", "org", "create", ORG, "--data-dir", str(data_dir)], home)
    run_cli(["admin", "domain", "add", ORG, DOMAIN, "--data-dir", str(data_dir)], home)
    eabs = create_eabs(data_dir, home, accounts)
    ca_bundle = home / eabs[0]["ca_bundle"]  # absolute paths stay absolute
    command = [str(acmefleet_exe()), "server", "run", "--data-dir", str(data_dir),
               "--listen", f"127.0.0.1:{port}"]
    if workers:
        command += ["--workers", str(workers)]
    log_path = home / "server.log"
    log = log_path.open("ab")
    proc = subprocess.Popen([*command, *run_args], cwd=home, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_parent)  # noqa: PLW1509

    def stop() -> None:
        terminate_group(proc)
        log.close()

    try:
        wait_for_url(eabs[0]["directory"], ca_bundle, proc, startup_timeout)
    except (RuntimeError, TimeoutError) as exc:
        stop()
        raise RuntimeError(f"acmefleet server did not start: {exc}\n{tail(log_path)}") from exc
    credentials = iter([(e["kid"], e["hmac_key"]) for e in eabs])
    return Target("acmefleet", eabs[0]["directory"], ca_bundle, proc.pid,
                  lambda: next(credentials), stop, log_path)


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a log file."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------- workload

@dataclass
class WorkerStats:
    """What one worker thread observed."""

    latencies: list[float] = field(default_factory=list)
    hangs: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)
    finished: float | None = None

    def record_error(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(f"{type(exc).__name__}: {str(exc)[:300]}")


@dataclass
class PhaseRaw:
    """Raw observations of one measured phase."""

    server: str
    concurrency: int
    stats: list[WorkerStats]
    elapsed: float
    server_cpu: float
    client_cpu: float
    stuck: int


@dataclass
class PhaseResult:
    """Figures for one (server, concurrency), pooled over rounds."""

    server: str
    concurrency: int
    rounds: int
    issued: int
    elapsed_s: float
    certs_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    server_cpu_ms_per_cert: float | None
    client_cpu_ms_per_cert: float | None
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
    """Shared settings of one phase's workers."""

    def __init__(self, names: Iterator[str], timeout: float, quota: Quota,
                 start: threading.Barrier, warmup: int) -> None:
        self.names = names
        self.timeout = timeout
        self.quota = quota
        self.start = start
        self.warmup = warmup
        self._lock = threading.Lock()
        self.stop_at = float("inf")

    def next_name(self) -> str:
        with self._lock:
            return next(self.names)

    def issue(self, client: AcmeClient, stats: WorkerStats) -> float | None:
        """One full issuance; its latency in seconds, or None after a hang/error."""
        began = time.perf_counter()
        try:
            client.issue_certificate([self.next_name()], timeout=self.timeout)
        except (TimeoutError, httpx.TimeoutException):
            stats.hangs += 1
        except Exception as exc:
            stats.record_error(exc)
        else:
            return time.perf_counter() - began
        return None


def worker(client: AcmeClient, work: Workload, stats: WorkerStats) -> None:
    """Warm up, wait for the start signal, then issue until time or quota runs out."""
    for _ in range(work.warmup):
        work.issue(client, stats)
    try:
        work.start.wait(timeout=work.timeout * (work.warmup + 1) + 30)
    except threading.BrokenBarrierError:
        return
    while time.monotonic() < work.stop_at and work.quota.take():
        latency = work.issue(client, stats)
        if latency is not None:
            stats.latencies.append(latency)
    stats.finished = time.perf_counter()


def open_account(target: Target, timeout: float) -> AcmeClient:
    """A client with a fresh EAB-bound account on ``target``."""
    client = AcmeClient(target.directory_url, target.ca_bundle, timeout=timeout,
                        poll_interval=0.01)
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
              names: Iterator[str]) -> PhaseRaw:
    """Measure ``concurrency`` workers issuing against ``target``."""
    clients = open_accounts(target, concurrency, args.timeout)
    barrier = threading.Barrier(concurrency + 1)
    work = Workload(names, args.timeout, Quota(args.count), barrier, args.warmup)
    stats = [WorkerStats() for _ in clients]
    threads = [threading.Thread(target=worker, args=(c, work, s), daemon=True,
                                name=f"{target.name}-{i}")
               for i, (c, s) in enumerate(zip(clients, stats, strict=True))]
    for thread in threads:
        thread.start()
    try:
        barrier.wait(timeout=args.timeout * (args.warmup + 1) + 30)
    except threading.BrokenBarrierError:
        barrier.abort()
    cpu_before, client_before = tree_cpu_seconds(target.pid), client_cpu_seconds()
    began = time.perf_counter()
    work.stop_at = time.monotonic() + (args.duration if args.count is None else args.max_time)
    stuck = join_all(threads, work.stop_at + 2 * args.timeout + 10)
    ended = time.perf_counter()
    cpu_used = tree_cpu_seconds(target.pid) - cpu_before
    client_used = client_cpu_seconds() - client_before
    if not stuck:
        finished = [s.finished for s in stats if s.finished is not None]
        ended = max(finished, default=ended)
        for client in clients:
            client.close()
    return PhaseRaw(target.name, concurrency, stats, ended - began, cpu_used, client_used, stuck)


def join_all(threads: list[threading.Thread], deadline: float) -> int:
    """Join threads until ``deadline`` (monotonic); return how many are still running."""
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return sum(thread.is_alive() for thread in threads)


def summarize(raws: Sequence[PhaseRaw]) -> PhaseResult:
    """Pool the phases of one (server, concurrency) pair into figures."""
    stats = [s for raw in raws for s in raw.stats]
    latencies = sorted(itertools.chain.from_iterable(s.latencies for s in stats))
    issued, elapsed = len(latencies), sum(raw.elapsed for raw in raws)
    stuck = sum(raw.stuck for raw in raws)
    return PhaseResult(
        server=raws[0].server, concurrency=raws[0].concurrency, rounds=len(raws),
        issued=issued, elapsed_s=round(elapsed, 3),
        certs_per_s=issued / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
        server_cpu_ms_per_cert=per_cert(sum(raw.server_cpu for raw in raws), issued),
        client_cpu_ms_per_cert=per_cert(sum(raw.client_cpu for raw in raws), issued),
        hangs=sum(s.hangs for s in stats) + stuck, errors=sum(s.errors for s in stats),
        stuck_workers=stuck,
        error_samples=list(itertools.chain.from_iterable(s.samples for s in stats))[:5],
    )


# ---------------------------------------------------------------- report

COLUMNS = ("server", "conc", "certs", "certs/s", "p50 ms", "p95 ms", "srv CPU ms/cert",
           "cli CPU ms/cert", "hangs", "errors")


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def result_row(r: PhaseResult) -> list[str]:
    return [r.server, str(r.concurrency), str(r.issued), fmt(r.certs_per_s), fmt(r.p50_ms),
            fmt(r.p95_ms), fmt(r.server_cpu_ms_per_cert), fmt(r.client_cpu_ms_per_cert),
            str(r.hangs), str(r.errors)]


def ratios(results: list[PhaseResult]) -> list[dict[str, Any]]:
    """acmefleet/pebble ratios per concurrency level."""
    found = {(r.server, r.concurrency): r for r in results}
    out = []
    for conc in sorted({r.concurrency for r in results}):
        ours, theirs = found.get(("acmefleet", conc)), found.get(("pebble", conc))
        if ours is None or theirs is None:
            continue
        out.append({"concurrency": conc,
                    "certs_per_s": ratio(ours.certs_per_s, theirs.certs_per_s),
                    "p50_ms": ratio(ours.p50_ms, theirs.p50_ms),
                    "p95_ms": ratio(ours.p95_ms, theirs.p95_ms),
                    "server_cpu_ms_per_cert": ratio(ours.server_cpu_ms_per_cert,
                                                    theirs.server_cpu_ms_per_cert),
                    "client_cpu_ms_per_cert": ratio(ours.client_cpu_ms_per_cert,
                                                    theirs.client_cpu_ms_per_cert)})
    return out


def ratio_row(r: dict[str, Any]) -> list[str]:
    def x(key: str) -> str:
        return "-" if r[key] is None else f"{r[key]:.2f}x"
    return ["acmefleet/pebble", str(r["concurrency"]), "", x("certs_per_s"), x("p50_ms"),
            x("p95_ms"), x("server_cpu_ms_per_cert"), x("client_cpu_ms_per_cert"), "", ""]


def render(rows: list[list[str]]) -> str:
    table = [list(COLUMNS), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: list[PhaseResult], args: argparse.Namespace) -> dict[str, Any]:
    """Print the table (and error samples); return the JSON document."""
    ratio_list = ratios(results)
    rows = [result_row(r) for r in sorted(results, key=lambda r: (r.concurrency, r.server))]
    print()
    print(render(rows + [ratio_row(r) for r in ratio_list]))
    for r in results:
        for sample in r.error_samples:
            print(f"  [{r.server} c={r.concurrency}] {sample}")
    return {
        "settings": {key: value for key, value in vars(args).items() if key != "json"},
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 "python": platform.python_version(), "clk_tck": os.sysconf("SC_CLK_TCK")},
        "results": [asdict(r) for r in results],
        "ratios_acmefleet_over_pebble": ratio_list,
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
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat all phases N times, flipping server order (default 1)")
    parser.add_argument("--only", choices=SERVERS, help="benchmark a single server")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="per-issuance timeout, seconds; exceeding it counts as a hang")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured issuances per worker before each phase (default 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="passed to `acmefleet server run --workers`")
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
    return args


def start_targets(args: argparse.Namespace, workdir: Path) -> list[Target]:
    """Start the selected servers (acmefleet first); stop them all if one fails."""
    accounts = sum(args.concurrency) * args.rounds
    starters: dict[str, Callable[[], Target]] = {
        "acmefleet": lambda: start_acmefleet(workdir, accounts, args.workers,
                                             args.acmefleet_arg, args.startup_timeout),
        "pebble": lambda: start_pebble(workdir, accounts),
    }
    targets: list[Target] = []
    try:
        for name in [args.only] if args.only else SERVERS:
            print(f"starting {name} ...", flush=True)
            targets.append(starters[name]())
    except BaseException:
        for target in targets:
            target.stop()
        raise
    return targets


def benchmark(args: argparse.Namespace,
              workdir: Path) -> tuple[list[PhaseResult], list[dict[str, Any]]]:
    """Start the servers and run every phase; returns pooled figures and per-round ones.

    Servers are interleaved per concurrency level and their order flips every round.
    """
    targets = start_targets(args, workdir)
    names = (f"h{n}.{DOMAIN}" for n in itertools.count(1))
    pooled: dict[tuple[str, int], list[PhaseRaw]] = {}
    per_round: list[dict[str, Any]] = []
    try:
        for round_no in range(1, args.rounds + 1):
            order = targets if round_no % 2 else targets[::-1]
            for conc in args.concurrency:
                for target in order:
                    print(f"round {round_no}: {target.name}, concurrency {conc} ...", flush=True)
                    raw = run_phase(target, conc, args, names)
                    pooled.setdefault((target.name, conc), []).append(raw)
                    figures = summarize([raw])
                    per_round.append({"round": round_no, **asdict(figures)})
                    print(f"  {figures.issued} certs, {figures.certs_per_s:.1f}/s, "
                          f"{figures.hangs} hangs, {figures.errors} errors", flush=True)
    finally:
        for target in targets:
            target.stop()
    return [summarize(raws) for raws in pooled.values()], per_round


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-issuance-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results, per_round = benchmark(args, workdir)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        if not args.only:
            print("(use --only pebble while acmefleet is unavailable)", file=sys.stderr)
        return 2
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    document = report(results, args)
    document["rounds"] = per_round
    if args.json:
        args.json.write_text(json.dumps(document, indent=2, default=str))
        print(f"\nfigures written to {args.json}")
    failed = any(r.hangs or r.errors or not r.issued for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
