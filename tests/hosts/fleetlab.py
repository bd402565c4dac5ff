"""Test support for the host tests: lab fleets and ansible-playbook runs with their recaps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from acmefleet.lab.fleet import bring_up, inventory_document, write_inventory
from acmefleet.lab.hosts import Lab, LabHost
from acmefleet.lab.rootfs import DEFAULT_SUITE, LAB_USER

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
ACMEFLEET = str(Path(sys.executable).with_name("acmefleet"))
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.M,
)


class Spec(NamedTuple):
    """One lab host of a test fleet: its stack (None: the ACME server), Debian suite and
    the user Ansible logs in as (the sudo user unless said otherwise)."""

    name: str
    index: int
    stack: str | None
    suite: str = DEFAULT_SUITE
    user: str = LAB_USER


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("host tests need root (network namespaces, mounts, systemd-nspawn)")


@dataclass
class PlaybookRun:
    rc: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(self.output)
        }

    def changed(self) -> dict[str, int]:
        return {host: counts["changed"] for host, counts in self.recap().items()}


def playbook_env() -> dict[str, str]:
    """The environment plain ansible-playbook runs of this checkout get."""
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }


def ansible_playbook(
    playbook: str, inventory: Path, *extra: str, timeout: float = 1500
) -> PlaybookRun:
    env = playbook_env()
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(ROOT / "playbooks" / playbook), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=ROOT,
    )
    return PlaybookRun(result.returncode, result.stdout + result.stderr)


def rollout(inventory: Path, *args: str) -> tuple[int, list[dict[str, object]], str]:
    """``acmefleet rollout -i INVENTORY ARGS``: exit code, report rows, output."""
    report = inventory.parent / f"report-{time.monotonic_ns()}.json"
    result = subprocess.run(
        [ACMEFLEET, "rollout", "-i", str(inventory), "--report", str(report), *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    rows = json.loads(report.read_text()) if report.exists() else []
    return result.returncode, rows, result.stdout + result.stderr


@contextmanager
def lab_fleet(
    workdir: Path, specs: Sequence[Spec | tuple[str, int, str | None]], **document: Any
) -> Iterator[tuple[Lab, dict[str, LabHost], Path]]:
    """Hosts up (first = ACME server), a fleet inventory written; everything down after.

    A plain (name, index, stack) is a Debian 12 host reached as the sudo user.
    """
    require_root()
    hosts = [Spec(*spec) for spec in specs]
    lab = Lab()
    for spec in hosts:
        lab.down(spec.name)  # leftovers of an interrupted run
    try:
        started = {h.name: h for h in bring_up(lab, [(s.name, s.index, s.suite) for s in hosts])}
        server = started[hosts[0].name]
        web = [(started[s.name], s.stack) for s in hosts[1:] if s.stack is not None]
        users = {s.name: s.user for s in hosts}
        doc = inventory_document(lab, server, web, users=users)
        for key, value in document.items():
            doc["acme_servers"][0]["vars"][key] = value  # type: ignore[index]
        inventory = write_inventory(workdir / "lab.fleet.yml", doc)
        yield lab, started, inventory
    finally:
        for spec in hosts:
            lab.down(spec.name)


def ssh(
    lab: Lab, host: LabHost, command: str, timeout: float = 120, user: str = "root"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", *lab.ssh_options(), f"{user}@{host.address}", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
