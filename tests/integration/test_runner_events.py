"""The packages phase from ansible-runner's own events (fleet/runner.py ``record_event``).

A real ansible-runner run on this machine (connection local, no root, nothing installed): a
role whose ``tasks/packages.yml`` sleeps stands in for the stack's package step, so the span
the runner's display callback stamps on each result is measured, not made up.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from acmefleet.fleet.runner import PlayResult, record_event

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


def test_package_tasks_give_each_host_its_packages_span(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "roles" / "stack" / "tasks").mkdir(parents=True)
    (project / "play.yml").write_text(PLAYBOOK)
    (project / "roles" / "stack" / "tasks" / "packages.yml").write_text(PACKAGES)
    (project / "roles" / "stack" / "tasks" / "main.yml").write_text(MAIN)
    inventory = tmp_path / "hosts.ini"
    python = sys.executable
    inventory.write_text(
        f"good ansible_connection=local ansible_python_interpreter={python}\n"
        f"broken ansible_connection=local ansible_python_interpreter={python}\n"
    )
    result = PlayResult()
    events: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> bool:
        events.append(event)
        record_event(result, event, None)
        return True

    (tmp_path / "run").mkdir()
    started = time.time()
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "run"),
        project_dir=str(project),
        playbook=str(project / "play.yml"),
        inventory=str(inventory),
        envvars={"PATH": f"{Path(python).parent}:/usr/bin:/bin"},
        event_handler=on_event,
        quiet=True,
    )
    ended = time.time()
    assert runner.rc != 0  # "broken" failed
    assert set(result.packages) == {"good", "broken"}, [e.get("event") for e in events]
    good = result.packages["good"]
    assert started <= good[0] < good[1] <= ended
    assert good[1] - good[0] >= 0.6  # the package step's pause
    later = next(
        e["event_data"]
        for e in events
        if e.get("event") == "runner_on_ok"
        and e["event_data"].get("host") == "good"
        and str(e["event_data"].get("task", "")).startswith("Obtain")
    )
    assert later["task_path"].endswith(("main.yml:1", "main.yml:2"))
    assert datetime.fromisoformat(later["start"]).timestamp() >= good[1] - 0.01  # not in it
    assert result.packages_failed == {"broken"}
    assert "good" not in result.packages_failed
    assert "Unable to locate package" in result.failed["broken"]
