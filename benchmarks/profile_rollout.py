"""Where the controller's CPU goes in a first roll-out: a sampling profile of every process.

    sudo .venv/bin/python benchmarks/profile_rollout.py [--hosts 6] [--rate 100] [--json FILE]

Brings up two fresh fleets of N hosts (half Apache+Certbot, half Nginx+Lego, plus the ACME
server host) and enrols one with plain ``ansible-playbook`` (acme_server.yml, then
enroll.yml) and the other with ``acmefleet rollout --waves 100%``, each under ``py-spy
record --subprocesses`` (pip install py-spy): every Python process of the run is sampled,
the forked Ansible workers included. ``ssh`` is not Python and is not sampled; its share is
the run's CPU (rusage of the finished children) less the sampled seconds.

Reported per run: the CPU seconds by process (the orchestrator, each ansible-playbook's main
process and its workers, ansible-inventory), and by what the code was doing, counted
inclusively (a sample inside templating called from a module build counts for both). The
profiler slows the run; the proportions are what to read, not the wall time.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acmefleet.lab.hosts import Lab  # noqa: E402
from benchmarks.bench_rollout import fleet  # noqa: E402
from tests.hosts.fleetlab import ANSIBLE_PLAYBOOK, playbook_env  # noqa: E402

PY_SPY = Path(sys.executable).with_name("py-spy")
ACMEFLEET = Path(sys.executable).with_name("acmefleet")
PLAYBOOKS = ROOT / "playbooks"

# What the code was doing, by the frames a sample's stack holds (file path or function).
ACTIVITIES: dict[str, tuple[str, ...]] = {
    "start-up: imports": ("importlib._bootstrap",),
    "playbook and role loading": ("ansible/playbook/", "ansible/parsing/"),
    "inventory and host variables": (
        "ansible/inventory/",
        "ansible/vars/",
        "acmefleet/fleet/fleet.py",
    ),
    "templating (Jinja2)": ("ansible/template/", "ansible/_internal/_templating", "jinja2/"),
    "module build (AnsiballZ)": ("ansible/executor/module_common.py",),
    "action plugins": ("ansible/plugins/action/",),
    "SSH connection plugin": ("ansible/plugins/connection/ssh.py",),
    "strategy: queueing, results": ("ansible/plugins/strategy/",),
    "ansible-runner display callback": ("ansible_runner/display_callback",),
    "stdout callback (default)": ("ansible/plugins/callback/default.py",),
    "ansible-runner parent (pexpect, event files)": ("ansible_runner/runner.py", "pexpect/"),
    "acmefleet enrolment_summary callback": ("plugins/callback/enrolment_summary",),
    "acmefleet orchestrator": ("acmefleet/fleet/",),
    "paramiko (preflight)": ("paramiko/",),
}

RECORD = re.compile(r"(.*?) (\d+)\n", re.S)
PROCESS = re.compile(r'^process (\d+):"(.*)"$', re.S)


@dataclass
class Profile:
    rate: int
    by_process: Counter[str] = field(default_factory=Counter)
    by_activity: Counter[str] = field(default_factory=Counter)
    samples: int = 0

    def seconds(self, samples: int) -> float:
        return samples / self.rate


def split_stack(line: str) -> tuple[list[tuple[int, str]], list[str]]:
    """py-spy's raw line: ``process P:"cmd";process C:"cmd";frame;frame``. Command lines
    hold no ';' in these runs (ansible's arguments are paths and options)."""
    processes: list[tuple[int, str]] = []
    frames: list[str] = []
    for part in line.split(";"):
        match = PROCESS.match(part)
        if match and not frames:
            processes.append((int(match[1]), match[2]))
        else:
            frames.append(part)
    return processes, frames


def process_role(processes: list[tuple[int, str]]) -> str:
    """Which process a sample is from: the command's kind, and "worker" for a fork of it."""
    _, command = processes[-1]
    words = command.split()
    tool = Path(words[1] if len(words) > 1 and words[0].endswith("python") else words[0]).name
    if tool == "ansible-playbook":
        playbook = next((Path(w).name for w in words if w.endswith(".yml")), "?")
        forked = len(processes) > 1 and processes[-2][1] == command
        return f"ansible-playbook {playbook} {'workers' if forked else 'main'}"
    if "rollout" in words:
        return "acmefleet rollout (orchestrator)"
    return tool


def parse(raw: str, rate: int) -> Profile:
    profile = Profile(rate)
    for record in RECORD.finditer(raw):
        processes, frames = split_stack(record[1].lstrip("\n"))
        count = int(record[2])
        if not processes:
            continue
        profile.samples += count
        profile.by_process[process_role(processes)] += count
        stack = ";".join(frames)
        for activity, marks in ACTIVITIES.items():
            if any(mark in stack for mark in marks):
                profile.by_activity[activity] += count
    return profile


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def profiled(
    command: list[str], out: Path, rate: int, env: dict[str, str] | None
) -> tuple[float, float]:
    """Run ``command`` under py-spy: its wall seconds and the CPU seconds of the finished
    children (the profiler's own CPU is in that figure too)."""
    before, started = children_cpu(), time.monotonic()
    run = subprocess.run(
        [str(PY_SPY), "record", "--subprocesses", "--nonblocking", "-r", str(rate),
         "-f", "raw", "-o", str(out), "--", *command],
        capture_output=True, text=True, env=env, check=False, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return time.monotonic() - started, children_cpu() - before


def run_plain(
    lab: Lab, size: int, work: Path, rate: int
) -> Iterator[tuple[str, Path, tuple[float, float]]]:
    names, inventory = fleet(lab, size, 110, "pp", work)
    try:
        token, bundle = work / "pp-token", work / "pp-bundle.pem"
        server = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(PLAYBOOKS / "acme_server.yml"),
                  "-e", f"acme_server_admin_token_dest={token}",
                  "-e", f"acme_server_ca_bundle_dest={bundle}"]  # fmt: skip
        out = work / "plain-server.raw"
        yield "plain acme_server.yml", out, profiled(server, out, rate, playbook_env())
        address = lab.get("pps").address  # type: ignore[union-attr]
        enrol = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(PLAYBOOKS / "enroll.yml"),
                 "-e", f"acmefleet_api_url=https://{address}:8555",
                 "-e", f"acmefleet_console_token_file={token}",
                 "-e", f"acmefleet_ca_bundle={bundle}"]  # fmt: skip
        out = work / "plain-enroll.raw"
        yield "plain enroll.yml", out, profiled(enrol, out, rate, playbook_env())
    finally:
        for name in names:
            lab.down(name)


def run_rollout(
    lab: Lab, size: int, work: Path, rate: int
) -> Iterator[tuple[str, Path, tuple[float, float]]]:
    names, inventory = fleet(lab, size, 140, "pr", work)
    try:
        out = work / "rollout.raw"
        command = [str(ACMEFLEET), "rollout", "-i", str(inventory), "--waves", "100%"]
        yield "acmefleet rollout", out, profiled(command, out, rate, None)
    finally:
        for name in names:
            lab.down(name)


def report(label: str, profile: Profile, cpu: float, wall: float) -> dict[str, object]:
    sampled = profile.seconds(profile.samples)
    print(f"\n== {label}: wall {wall:.1f} s, children CPU {cpu:.1f} s, sampled Python "
          f"{sampled:.1f} s, not sampled (ssh, other C) {cpu - sampled:.1f} s")  # fmt: skip
    for role, count in profile.by_process.most_common():
        print(f"   {profile.seconds(count):7.1f} s  {role}")
    print("   -- by activity (inclusive)")
    for activity, count in profile.by_activity.most_common():
        print(f"   {profile.seconds(count):7.1f} s  {activity}")
    return {
        "wall_s": wall,
        "children_cpu_s": cpu,
        "sampled_s": sampled,
        "by_process_s": {k: profile.seconds(v) for k, v in profile.by_process.items()},
        "by_activity_s": {k: profile.seconds(v) for k, v in profile.by_activity.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=6)
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--only", choices=("plain", "rollout"))
    parser.add_argument("--keep", type=Path, help="copy the raw profiles here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not PY_SPY.exists():
        raise SystemExit(f"{PY_SPY} is missing: .venv/bin/pip install py-spy")
    lab = Lab()
    work = Path(tempfile.mkdtemp(prefix="profile-rollout-"))
    results: dict[str, object] = {}
    try:
        runs = []
        if args.only != "rollout":
            runs.append(run_plain(lab, args.hosts, work, args.rate))
        if args.only != "plain":
            runs.append(run_rollout(lab, args.hosts, work, args.rate))
        for steps in runs:
            for label, out, (wall, cpu) in steps:
                profile = parse(out.read_text(errors="replace"), args.rate)
                results[label] = report(label, profile, cpu, wall)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(out, args.keep / out.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
