"""Roll-out benchmark: acmefleet rollout against plain ansible-playbook, on fresh test hosts.

    sudo .venv/bin/python benchmarks/bench_rollout.py [--sizes 10,20,40] [--runs 3] [--json FILE]

For each fleet size N (half Apache+Certbot, half Nginx+Lego, plus one ACME server host):
  1. plain:   fresh hosts; ansible-playbook acme_server.yml, then enroll.yml on all hosts;
              then the idempotent re-run of enroll.yml;
  2. rollout: fresh hosts; acmefleet rollout --waves 100% (one wave, like the plain run),
              then the repeated rollout (verifies over TLS, runs no Ansible on good hosts).
Wall times to the last valid certificate, per host, the controller's CPU seconds (Ansible,
ssh, ansible-runner and acmefleet; the hosts' own work is not counted) and the overhead.
With ``--runs N`` each size is measured N times (plain and rollout alternating) and the
medians are printed. The hosts are removed at the end of each phase; the script stops by
itself.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acmefleet.lab.fleet import bring_up, inventory_document, write_inventory  # noqa: E402
from acmefleet.lab.hosts import Lab  # noqa: E402
from benchmarks import accounting  # noqa: E402
from tests.hosts.fleetlab import ansible_playbook  # noqa: E402

ACMEFLEET = str(Path(sys.executable).with_name("acmefleet"))


BY_PROCESS = "cpu by process: "  # key prefix of the --by-process figures


def timed(
    size: int, first: Callable[[], None], again: Callable[[], None], rerun: bool, by_process: bool
) -> dict[str, float]:
    """Wall time and controller CPU of the first enrolment (with ``by_process``, split by
    process kind from the kernel's process accounting), and the wall time of a re-run (NaN
    with --no-rerun)."""
    split: dict[str, float] = {}
    started, cpu = time.monotonic(), controller_cpu()
    if by_process:
        with accounting.accounting() as read:
            first()
            records = accounting.descendants(read(), os.getpid())
        split = {f"{BY_PROCESS}{k}": v for k, v in accounting.by_kind(records).items()}
        split[f"{BY_PROCESS}all records"] = sum(r.cpu_s for r in records)
    else:
        first()
    total, cpu = time.monotonic() - started, controller_cpu() - cpu
    again_started = time.monotonic()
    if rerun:
        again()
    return {
        "wall_s": total,
        "per_host_s": total / size,
        "controller_cpu_s": cpu,
        "rerun_s": time.monotonic() - again_started if rerun else float("nan"),
        **split,
    }


def acmefleet_rollout(inventory: Path, timeout: float) -> None:
    run = subprocess.run(
        [ACMEFLEET, "rollout", "-i", str(inventory), "--waves", "100%"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def controller_cpu() -> float:
    """CPU seconds of the finished child processes: Ansible, ssh, ansible-runner, acmefleet.

    The test hosts' own processes are not children of this script, so this is the
    controller's share of the work, whatever the hosts spend.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fleet(lab: Lab, size: int, first_index: int, tag: str, workdir: Path) -> tuple[list[str], Path]:
    names = [(f"{tag}s", first_index)] + [(f"{tag}{i}", first_index + 1 + i) for i in range(size)]
    hosts = bring_up(lab, names, parallel=6)
    stacks = ["certbot_apache" if i % 2 == 0 else "lego_nginx" for i in range(size)]
    doc = inventory_document(lab, hosts[0], list(zip(hosts[1:], stacks, strict=True)))
    return [n for n, _ in names], write_inventory(workdir / f"{tag}.fleet.yml", doc)


def plain(lab: Lab, size: int, workdir: Path, rerun: bool, by_process: bool) -> dict[str, float]:
    names, inventory = fleet(lab, size, 110, "bp", workdir)
    secrets = workdir / "plain-secrets"
    token, bundle = secrets / "bps-admin-token", secrets / "bps-ca-bundle.pem"
    enroll_vars: list[str] = []

    def enrol() -> None:
        run = ansible_playbook("enroll.yml", inventory, *enroll_vars)
        assert run.rc == 0, run.output[-3000:]

    def server_then_enrol() -> None:
        server = ansible_playbook(
            "acme_server.yml",
            inventory,
            "-e",
            f"acme_server_admin_token_dest={token}",
            "-e",
            f"acme_server_ca_bundle_dest={bundle}",
        )
        assert server.rc == 0, server.output[-3000:]
        address = lab.get("bps").address  # type: ignore[union-attr]
        enroll_vars.extend(
            [
                "-e",
                f"acmefleet_api_url=https://{address}:8555",
                "-e",
                f"acmefleet_console_token_file={token}",
                "-e",
                f"acmefleet_ca_bundle={bundle}",
            ]
        )
        enrol()

    try:
        return timed(size, server_then_enrol, enrol, rerun, by_process)
    finally:
        for name in names:
            lab.down(name)


def rollout(lab: Lab, size: int, workdir: Path, rerun: bool, by_process: bool) -> dict[str, float]:
    names, inventory = fleet(lab, size, 160, "br", workdir)
    try:
        return timed(
            size,
            lambda: acmefleet_rollout(inventory, timeout=3600),
            lambda: acmefleet_rollout(inventory, timeout=600),
            rerun,
            by_process,
        )
    finally:
        for name in names:
            lab.down(name)


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = {key for run in runs for key in run}
    return {key: statistics.median(run.get(key, 0.0) for run in runs) for key in sorted(keys)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,20,40")
    parser.add_argument("--runs", type=int, default=1, help="runs per size (medians shown)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the re-runs (big sizes)")
    parser.add_argument(
        "--by-process",
        action="store_true",
        help="split the controller CPU by process kind (process accounting: accton, root)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lab = Lab()
    workdir = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        for size in (int(word) for word in args.sizes.split(",")):
            runs = results.setdefault(str(size), {"plain": [], "rollout": []})
            for number in range(1, args.runs + 1):
                print(f"fleet of {size}, run {number}: plain ansible-playbook ...", flush=True)
                runs["plain"].append(plain(lab, size, workdir, not args.no_rerun, args.by_process))
                print(f"fleet of {size}, run {number}: acmefleet rollout ...", flush=True)
                runs["rollout"].append(
                    rollout(lab, size, workdir, not args.no_rerun, args.by_process)
                )
                print(
                    f"fleet of {size}, run {number}: "
                    f"{json.dumps({k: v[-1] for k, v in runs.items()})}",
                    flush=True,
                )
            if args.json:  # after each size: a long run keeps what it measured
                args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\n{'hosts':>5}  {'runner':<18} {'wall s':>8} {'s/host':>7} {'ctl CPU s':>9}"
        f" {'CPU/host':>8} {'re-run s':>9}   (medians of {args.runs})"
    )
    for hosts, runs in results.items():
        figures = {runner: median(values) for runner, values in runs.items() if values}
        for runner, figure in figures.items():
            label = "ansible-playbook" if runner == "plain" else "acmefleet rollout"
            print(
                f"{hosts:>5}  {label:<18} {figure['wall_s']:8.1f} {figure['per_host_s']:7.1f}"
                f" {figure['controller_cpu_s']:9.1f} {figure['controller_cpu_s'] / int(hosts):8.2f}"
                f" {figure['rerun_s']:9.1f}"
            )
        for runner, figure in figures.items():
            split = {k.removeprefix(BY_PROCESS): v for k, v in figure.items() if BY_PROCESS in k}
            if split:
                print(
                    f"{'':5}  {runner} CPU by process: "
                    + ", ".join(
                        f"{name} {seconds:.1f} s" for name, seconds in sorted(split.items())
                    )
                )
        overhead = figures["rollout"]["wall_s"] / figures["plain"]["wall_s"]
        cpu_ratio = figures["rollout"]["controller_cpu_s"] / figures["plain"]["controller_cpu_s"]
        print(f"{hosts:>5}  {'rollout/plain':<18} {overhead:8.2f}x {'':7} {cpu_ratio:8.2f}x")


if __name__ == "__main__":
    main()
