"""Test support for the host tests: lab fleets and ansible-playbook runs with their recaps."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from acmefleet.lab.fleet import bring_up, inventory_document, write_inventory
from acmefleet.lab.hosts import Lab, LabHost

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.M,
)


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


def ansible_playbook(
    playbook: str, inventory: Path, *extra: str, timeout: float = 1500
) -> PlaybookRun:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
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


@contextmanager
def lab_fleet(
    workdir: Path, hosts: list[tuple[str, int, str | None]], **document: Any
) -> Iterator[tuple[Lab, dict[str, LabHost], Path]]:
    """Hosts up (first = ACME server), a fleet inventory written; everything down after."""
    require_root()
    lab = Lab()
    for name, _, _ in hosts:
        lab.down(name)  # leftovers of an interrupted run
    try:
        started = {h.name: h for h in bring_up(lab, [(n, i) for n, i, _ in hosts])}
        server = started[hosts[0][0]]
        web = [(started[n], stack) for n, _, stack in hosts[1:] if stack is not None]
        doc = inventory_document(lab, server, web)
        for key, value in document.items():
            doc["acme_servers"][0]["vars"][key] = value  # type: ignore[index]
        inventory = write_inventory(workdir / "lab.fleet.yml", doc)
        yield lab, started, inventory
    finally:
        for name, _, _ in hosts:
            lab.down(name)


def ssh(
    lab: Lab, host: LabHost, command: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", *lab.ssh_options(), f"root@{host.address}", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
