"""Soak: full issuances at high concurrency while attackers stall and flood the server.

    .venv/bin/python benchmarks/soak.py [--duration 600] [--concurrency 32] [--workers 2]
        [--slow-clients 40] [--json FILE]

One acmefleet server (its rate limits raised out of the way, as in bench_issuance) on
127.0.0.1. For ``--duration`` seconds, ``--concurrency`` client threads each with their own
account run full issuances (newOrder, finalize, download) on the private endpoint, while
two attackers run beside them:

* **slow clients**: ``--slow-clients`` TLS connections that drip a request head one byte
  every two seconds and reopen when the server closes them (a slowloris);
* **header flood**: requests with too many headers, or one oversized header, one after
  another over TLS (each should be a fast 431).

The server's resident memory (all its processes) is sampled every five seconds. At the end:
the database's integrity check, the audit chain, and every certificate a client received is
in the database. The run fails (exit 1) on any hang (a client timeout), any 5xx, a failed
check, or a flood answer other than 431/400; memory growth is reported, not judged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_issuance import (
    Target,
    acmefleet_exe,
    open_accounts,
    start_acmefleet,
)

from tests.support.acme_client import AcmeClient, AcmeError

SAMPLE_EVERY = 5.0


@dataclass
class Tally:
    """What one side observed; updated under ``lock``."""

    issued: int = 0
    hangs: int = 0
    server_errors: int = 0
    other_errors: int = 0
    samples: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note(self, kind: str, message: str) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if len(self.samples) < 5:
                self.samples.append(message[:300])


@dataclass
class AttackTally:
    slow_opened: int = 0
    slow_closed_by_server: int = 0
    slow_longest_s: float = 0.0
    flood_requests: int = 0
    flood_refused: int = 0
    flood_unexpected: int = 0
    flood_samples: list[str] = field(default_factory=list)


def server_pids(root_pid: int) -> list[int]:
    """The server's process group: the parent and its workers."""
    try:
        group = os.getpgid(root_pid)
    except ProcessLookupError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == group:
                    found.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return found


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def issuer(client: AcmeClient, index: int, stop_at: float, timeout: float, tally: Tally) -> None:
    n = 0
    while time.monotonic() < stop_at:
        name = f"s{index}-{n}.bench.example.com"
        n += 1
        try:
            chain = client.issue_certificate([name], timeout=timeout)
        except (TimeoutError, httpx.TimeoutException) as exc:
            tally.note("hangs", f"{name}: {exc!r}")
            continue
        except AcmeError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            tally.note("server_errors" if status >= 500 else "other_errors", str(exc))
            continue
        except Exception as exc:
            tally.note("other_errors", f"{type(exc).__name__}: {exc}")
            continue
        with tally.lock:
            tally.issued += 1
            tally.chains.append(chain)


def _tls_socket(host: str, port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=15)
    return context.wrap_socket(raw, server_hostname="localhost")


def slow_client(port: int, context: ssl.SSLContext, stop_at: float, tally: AttackTally,
                lock: threading.Lock) -> None:
    """Drip a request head, a byte every two seconds, for as long as the server lets us."""
    head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 4096
    while time.monotonic() < stop_at:
        try:
            conn = _tls_socket("127.0.0.1", port, context)
        except OSError:
            time.sleep(1)
            continue
        with lock:
            tally.slow_opened += 1
        opened = time.monotonic()
        try:
            for byte in head:
                if time.monotonic() >= stop_at:
                    return
                conn.sendall(bytes([byte]))
                if _answered(conn, 2.0):
                    raise ConnectionAbortedError
        except OSError:
            with lock:
                tally.slow_closed_by_server += 1
                tally.slow_longest_s = max(tally.slow_longest_s, time.monotonic() - opened)
        finally:
            conn.close()


def _answered(conn: ssl.SSLSocket, wait: float) -> bool:
    """Whether the server sent an answer (a 408) or closed, within ``wait`` seconds.

    A readable socket alone is not enough: TLS 1.3 servers send session tickets after the
    handshake, which the TLS layer consumes without handing the application any byte."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([conn], [], [], left)[0]:
            return False
        conn.setblocking(False)
        try:
            conn.recv(1)  # b"" (closed) or the first byte of an answer
            return True
        except ssl.SSLWantReadError:
            continue  # a TLS record with no application data
        finally:
            conn.settimeout(15)
    return False


def header_flood(port: int, context: ssl.SSLContext, stop_at: float, tally: AttackTally,
                 lock: threading.Lock) -> None:
    """Requests the server must refuse at once: 2,000 headers, or one of 100 KB."""
    many = b"".join(b"X-Flood-%d: %s\r\n" % (n, b"v" * 64) for n in range(2000))
    huge = b"X-Huge: " + b"v" * (100 * 1024) + b"\r\n"
    turn = 0
    while time.monotonic() < stop_at:
        extra = many if turn % 2 == 0 else huge
        turn += 1
        request = b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + extra + b"\r\n"
        try:
            conn = _tls_socket("127.0.0.1", port, context)
            with contextlib.suppress(OSError):  # the server may stop reading once it refused
                conn.sendall(request)
            answer = conn.recv(200)
            conn.close()
        except OSError as exc:
            answer = f"connection error {exc!r}".encode()
        status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
        with lock:
            tally.flood_requests += 1
            if status in (b"431", b"400"):
                tally.flood_refused += 1
            else:
                tally.flood_unexpected += 1
                if len(tally.flood_samples) < 5:
                    tally.flood_samples.append(answer[:120].decode("latin-1"))
        time.sleep(0.05)


def integrity(data_dir: Path, tally: Tally) -> dict[str, Any]:
    """The database, the audit chain, and the clients' certificates in the database."""
    database = sqlite3.connect(data_dir / "acmefleet.db")
    try:
        check = database.execute("PRAGMA integrity_check").fetchone()[0]
        stored = {row[0] for row in database.execute("SELECT chain_pem FROM certificates")}
    finally:
        database.close()
    audit = subprocess.run(
        [str(acmefleet_exe()), "admin", "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    missing = sum(1 for chain in tally.chains if chain not in stored)
    return {
        "sqlite_integrity": check,
        "audit_chain": audit.stdout.strip() or audit.stderr.strip(),
        "audit_chain_intact": audit.returncode == 0,
        "certificates_missing": missing,
    }


def https_port(target: Target) -> int:
    """The HTTPS port of ``target`` (from its directory URL)."""
    return int(target.directory_url.split(":")[2].split("/")[0])


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="acmefleet-soak-") as tmp:
        workdir = Path(tmp)
        target = start_acmefleet(workdir, args.concurrency, args.workers, [], 60.0)
        try:
            return soak(target, workdir / "acmefleet" / "data", args)
        finally:
            target.stop()


def soak(target: Target, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = https_port(target)
    context = ssl.create_default_context(cafile=str(target.ca_bundle))
    clients = open_accounts(target, args.concurrency, args.timeout)
    tally, attacks, lock = Tally(), AttackTally(), threading.Lock()
    began = time.monotonic()
    stop_at = began + args.duration
    rss: list[tuple[float, float]] = [(0.0, rss_mib(server_pids(target.pid)))]
    threads = [
        threading.Thread(target=issuer, args=(c, i, stop_at, args.timeout, tally), daemon=True)
        for i, c in enumerate(clients)
    ]
    threads += [
        threading.Thread(target=slow_client, args=(port, context, stop_at, attacks, lock),
                         daemon=True)
        for _ in range(args.slow_clients)
    ]
    threads.append(threading.Thread(target=header_flood,
                                    args=(port, context, stop_at, attacks, lock), daemon=True))
    for thread in threads:
        thread.start()
    while time.monotonic() < stop_at:
        time.sleep(min(SAMPLE_EVERY, max(0.0, stop_at - time.monotonic())))
        rss.append((round(time.monotonic() - began, 1), rss_mib(server_pids(target.pid))))
    for thread in threads:
        thread.join(timeout=args.timeout + 10)
    stuck = sum(1 for thread in threads if thread.is_alive())
    for client in clients:
        client.close()
    elapsed = time.monotonic() - began
    checks = integrity(data_dir, tally)
    report = {
        "duration_s": round(elapsed, 1),
        "concurrency": args.concurrency,
        "server_workers": args.workers,
        "issued": tally.issued,
        "certs_per_s": round(tally.issued / elapsed, 1),
        "hangs": tally.hangs,
        "server_errors_5xx": tally.server_errors,
        "other_errors": tally.other_errors,
        "error_samples": tally.samples,
        "stuck_threads": stuck,
        "attack": asdict(attacks),
        "rss_mib_start": round(rss[0][1], 1),
        "rss_mib_end": round(rss[-1][1], 1),
        "rss_mib_max": round(max(v for _, v in rss), 1),
        "rss_samples": rss,
        **checks,
    }
    report["passed"] = (
        tally.hangs == 0
        and tally.server_errors == 0
        and tally.other_errors == 0
        and stuck == 0
        and attacks.flood_unexpected == 0
        and checks["sqlite_integrity"] == "ok"
        and checks["audit_chain_intact"]
        and checks["certificates_missing"] == 0
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slow-clients", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=60.0, help="one issuance, seconds")
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args()
    report = run(args)
    shown = {k: v for k, v in report.items() if k != "rss_samples"}
    print(json.dumps(shown, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
