"""SSH preflight benchmark: the in-process probe (paramiko) against the ``ssh`` client.

    .venv/bin/python benchmarks/bench_probes.py [--hosts 50] [--rounds 3] [--parallel 32]
                                                [--json FILE]

N real OpenSSH servers (Debian's /usr/sbin/sshd, tests/support/sshd.py) on loopback ports
stand in for N hosts: each probe runs the full preflight (key login, the probe command:
uid, python3, os-release, sudo) on all of them, ``--rounds`` times, alternating. Per round:
the wall time and the controller's CPU seconds (this process, plus the ``ssh`` children it
waited for; the sshd servers are children too, but their work is not counted until they
are reaped, which happens after the last round). Loopback servers, not the lab's hosts: no
network latency, the servers share this machine's cores with the controller.
"""

from __future__ import annotations

import argparse
import getpass
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acmefleet.fleet.inventory import FleetHost  # noqa: E402
from acmefleet.fleet.preflight import PROBES, Probe, preflight  # noqa: E402
from tests.support.sshd import loopback_sshd  # noqa: E402


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(
    hosts: list[FleetHost], options: list[str], probe: Probe, parallel: int
) -> dict[str, float]:
    cpu0, wall0 = cpu(), time.monotonic()
    verdicts = preflight(hosts, options, probe=probe, parallel=parallel, timeout=30)
    wall, used = time.monotonic() - wall0, cpu() - cpu0
    failed = {name: v.problem for name, v in verdicts.items() if not v.ok}
    if failed:
        raise SystemExit(f"{probe}: hosts failed preflight: {failed}")
    return {"wall_s": round(wall, 3), "cpu_s": round(used, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {p: [] for p in PROBES}
    with loopback_sshd(args.hosts) as servers, tempfile.TemporaryDirectory() as scratch:
        options = servers.ssh_options(servers.known_hosts(Path(scratch) / "known_hosts"))
        hosts = [
            FleetHost(
                f"host{i:03d}",
                "127.0.0.1",
                "lego_nginx",
                (f"host{i:03d}.example.net",),
                "private",
                "example",
                port=port,
                user=getpass.getuser(),
            )
            for i, port in enumerate(servers.ports)
        ]
        for _ in range(args.rounds):
            for probe in PROBES:
                results[probe].append(measure(hosts, options, probe, args.parallel))
    summary = {
        probe: {
            "rounds": rounds,
            "median_wall_s": statistics.median(r["wall_s"] for r in rounds),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in rounds),
        }
        for probe, rounds in results.items()
    }
    report = {
        "hosts": args.hosts,
        "parallel": args.parallel,
        "servers": "OpenSSH sshd on loopback ports (not the lab hosts)",
        "probes": summary,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
