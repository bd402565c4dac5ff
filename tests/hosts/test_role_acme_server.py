"""The acme_server role end to end: ``molecule test`` of its default scenario.

Molecule brings up a disposable Debian 12 lab host (``python -m acmefleet.lab``), converges
the role (wheels built on this machine, installed on a host without a package index),
checks idempotence and check mode, verifies the service, then takes the host down.
Needs root (the lab hosts are systemd-nspawn machines in network namespaces).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hosts

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "acme_server"
SCENARIO = "default"
TIMEOUT = 1800  # seconds; a fresh wheel cache on a loaded machine takes a few minutes
TAIL_LINES = 250


def _run(args: list[str], env: dict[str, str], log: Path, timeout: float) -> int | None:
    """Run in its own process group (so a timeout stops Ansible too); None on timeout."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            cwd=ROLE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return None


@pytest.mark.timeout(TIMEOUT + 400)
def test_molecule_default_scenario(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "the acme_server Molecule scenario needs root: its lab host is a systemd-nspawn "
            "machine in a network namespace (run the host tests as root)"
        )
    bin_dir = Path(sys.executable).parent
    molecule = bin_dir / "molecule"
    if not molecule.exists():
        pytest.fail(f"{molecule} not found: install the project's dev extras (molecule)")
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # ansible-playbook, python
    env.update(NO_COLOR="1", PY_COLORS="0", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    log = tmp_path / "molecule.log"

    status = _run([str(molecule), "test", "-s", SCENARIO], env, log, TIMEOUT)
    if status != 0:
        # molecule test destroys on failure, but not when it was stopped: make sure.
        _run([str(molecule), "destroy", "-s", SCENARIO], env, log, 300)

    output = log.read_text(errors="replace")
    tail = "\n".join(output.splitlines()[-TAIL_LINES:])
    assert status is not None, f"molecule test ran over {TIMEOUT} s; log {log}:\n{tail}"
    assert status == 0, f"molecule test failed (exit {status}); log {log}:\n{tail}"
    for step in ("converge", "idempotence", "check", "verify"):
        done = f"[{SCENARIO} > {step}] Executed: Successful"
        assert done in output, f"no '{done}' in the log {log}:\n{tail}"
