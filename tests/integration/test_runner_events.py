"""The roll-out's playbook runs and their events (fleet/runner.py, the events callback).

Real ansible-playbook runs on this machine (connection local, no root, nothing installed)
through ``run_playbook``: a role whose ``tasks/packages.yml`` sleeps stands in for the
stack's package step, so the span the events callback stamps on each result is measured,
not made up; a no_log failure, a playbook that fails before any host runs, and progress.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acmefleet.fleet.runner import run_playbook, stream_events

pytestmark = pytest.mark.integration

PLAYBOOK = """\
- name: A stack's play
  hosts: all
  gather_facts: false
  tasks:
    - name: Install the stack's packages
      ansible.builtin.include_role:
        name: stack
        tasks_from: packages.yml
    - name: Enrol
      ansible.builtin.include_role:
        name: stack
"""
PACKAGES = """\
- name: Install the web server and the ACME client (here a pause)
  ansible.builtin.command: sleep 0.6
  changed_when: false
- name: Refuse on the host meant to fail
  ansible.builtin.fail:
    msg: "E: Unable to locate package lego"
  when: inventory_hostname == 'broken'
"""
MAIN = """\
- name: Obtain the certificate (here a pause outside the package step)
  ansible.builtin.command: sleep 0.3
  changed_when: false
"""


def project(tmp_path: Path, playbook: str = PLAYBOOK) -> tuple[Path, Path]:
    root = tmp_path / "project"
    (root / "roles" / "stack" / "tasks").mkdir(parents=True)
    (root / "play.yml").write_text(playbook)
    (root / "roles" / "stack" / "tasks" / "packages.yml").write_text(PACKAGES)
    (root / "roles" / "stack" / "tasks" / "main.yml").write_text(MAIN)
    inventory = tmp_path / "hosts.ini"
    python = sys.executable
    inventory.write_text(
        f"good ansible_connection=local ansible_python_interpreter={python}\n"
        f"broken ansible_connection=local ansible_python_interpreter={python}\n"
    )
    return root / "play.yml", inventory


def test_package_tasks_give_each_host_its_packages_span(tmp_path: Path) -> None:
    playbook, inventory = project(tmp_path)
    seen: list[tuple[str, str, str]] = []
    started = time.time()
    result = run_playbook(
        str(playbook), inventory, progress=lambda *event: seen.append(event), forks=2
    )
    ended = time.time()
    assert result.rc != 0  # "broken" failed
    assert set(result.packages) == {"good", "broken"}, seen
    good = result.packages["good"]
    assert started <= good[0] < good[1] <= ended
    assert good[1] - good[0] >= 0.6  # the package step's pause
    assert result.packages_failed == {"broken"}
    assert "good" not in result.packages_failed
    assert "Unable to locate package" in result.failed["broken"]
    assert result.ok == {"good"}
    # live progress: each host's start and end of each task it ran, in order
    good_events = [(event, task) for host, event, task in seen if host == "good"]
    install = "Install the web server and the ACME client (here a pause)"
    assert good_events.index(("start", install)) < good_events.index(("ok", install))
    assert ("ok", "Obtain the certificate (here a pause outside the package step)") in good_events
    assert ("failed", "Refuse on the host meant to fail") in [
        (event, task) for host, event, task in seen if host == "broken"
    ]


def test_a_no_log_failure_reports_no_output(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Use the secret\n"
        "      ansible.builtin.command: sh -c 'echo s3cr3t-value; exit 3'\n"
        "      no_log: true\n"
        "      when: inventory_hostname == 'broken'\n"
    )
    _, inventory = project(tmp_path)
    result = run_playbook(str(playbook), inventory, forks=2)
    assert result.rc != 0
    assert result.failed == {"broken": "Use the secret: failed (output hidden by no_log)"}
    assert "s3cr3t" not in repr(result)


def test_a_playbook_that_fails_before_any_host_gives_ansibles_own_words(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: all\n  tasks:\n    - name: Broken\n      no.such.module: {}\n")
    _, inventory = project(tmp_path)
    result = run_playbook(str(playbook), inventory, forks=2)
    assert result.rc != 0
    assert result.failed == {}
    assert "no.such.module" in result.tail, result.tail


def test_events_end_with_the_playbook_even_if_a_program_it_started_holds_the_pipe() -> None:
    """A daemon that inherited the pipe (what the callback's non-inheritable descriptor
    prevents) must not keep the roll-out waiting for an EOF that never comes."""
    read_end, write_end = os.pipe()
    script = (
        "import os, subprocess, sys\n"
        "fd = int(sys.argv[1])\n"
        'os.write(fd, b\'{"event": "runner_on_start", "event_data": {"host": "a"}}\\n\')\n'
        'os.write(fd, b\'not json\\n{"event": "playbook_on_stats", "event_data": {}}\\n\')\n'
        "holder = subprocess.Popen(\n"
        "    ['sleep', '60'], pass_fds=(fd,), stdout=subprocess.DEVNULL, start_new_session=True\n"
        ")\n"
        "print(holder.pid, flush=True)\n"
    )
    playbook = subprocess.Popen(
        [sys.executable, "-c", script, str(write_end)],
        pass_fds=(write_end,),
        stdout=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    holder = None
    try:
        events = list(stream_events(playbook, read_end))
        holder = int(playbook.stdout.readline() if playbook.stdout else "0")
        assert [e["event"] for e in events] == ["runner_on_start", "playbook_on_stats"]
        assert Path(f"/proc/{holder}").exists()  # the pipe was still open: no EOF came
    finally:
        if holder is not None:
            os.kill(holder, signal.SIGKILL)
        playbook.wait()
        if playbook.stdout is not None:
            playbook.stdout.close()
        os.close(read_end)
