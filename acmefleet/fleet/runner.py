"""Run a playbook of the collection through ansible-runner, streaming events as progress.

Pre-minted EAB credentials reach the play through a 0600 vars file in a private directory
(``-e @file``), never through the command line or ansible-runner's stored environment; the
directory is removed when the run ends.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ansible_runner

from acmefleet.fleet.collection import COLLECTION_ROOT
from acmefleet.fleet.inventory import collection_environment

PLAYBOOKS = COLLECTION_ROOT / "playbooks"
ProgressFn = Callable[[str, str, str], None]  # (host, event, task)


@dataclass
class PlayResult:
    ok: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    changed_tasks: dict[str, list[str]] = field(default_factory=dict)  # host -> task names
    rc: int = 0
    tail: str = ""  # the end of Ansible's output, for errors no host is blamed for
    # host -> [first start, last end] (epoch seconds) of the stack's package tasks that ran
    # (a role's tasks/packages.yml, the stack interface's entry point): inside enroll.yml on
    # hosts prepare.yml did not install, so the report can show the packages phase there too
    packages: dict[str, list[float]] = field(default_factory=dict)
    packages_failed: set[str] = field(default_factory=set)  # hosts that failed in one


PACKAGE_TASKS = "/tasks/packages.yml:"  # task_path is "<file>:<line>"


def package_task_span(data: Mapping[str, Any]) -> tuple[float, float] | None:
    """When a package task ran on a host, from ansible-runner's event data (None: not one,
    or skipped, or no timing). The display callback stamps each result with its host's
    start and end as ISO 8601 times."""
    if PACKAGE_TASKS not in str(data.get("task_path") or ""):
        return None
    try:
        start = datetime.fromisoformat(str(data["start"])).timestamp()
        end = datetime.fromisoformat(str(data["end"])).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
    return (start, end) if end >= start else None


def _widen(spans: dict[str, list[float]], host: str, span: tuple[float, float]) -> None:
    known = spans.get(host)
    spans[host] = [min(known[0], span[0]), max(known[1], span[1])] if known else list(span)


def _environment(summary_file: Path) -> dict[str, str]:
    tools = str(Path(sys.executable).parent)  # ansible-playbook of this installation
    return {
        **collection_environment(),
        "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CALLBACKS_ENABLED": "acmefleet.fleet.enrolment_summary",
        "ACMEFLEET_ENROLMENT_SUMMARY": str(summary_file),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }


def _failure_message(data: dict[str, Any]) -> str:
    result = data.get("res", {}) or {}
    task = data.get("task", "?")
    if result.get("_ansible_no_log"):
        return f"{task}: failed (output hidden by no_log)"
    return f"{task}: {str(result.get('msg', 'failed')).strip()[:400]}"


def record_event(result: PlayResult, event: Mapping[str, Any], progress: ProgressFn | None) -> None:
    """Fold one ansible-runner event into the result (and report it as progress)."""
    data = event.get("event_data", {})
    host = data.get("host")
    kind = event.get("event", "")
    if host and kind in ("runner_on_ok", "runner_on_failed"):
        timing = package_task_span(data)
        if timing is not None:
            _widen(result.packages, host, timing)
            if kind == "runner_on_failed" and not data.get("ignore_errors"):
                result.packages_failed.add(host)
    if host and kind == "runner_on_failed" and not data.get("ignore_errors"):
        result.failed.setdefault(host, _failure_message(data))
    elif host and kind == "runner_on_ok" and (data.get("res") or {}).get("changed"):
        # what changed (or would, in check mode), in the order it ran
        result.changed_tasks.setdefault(host, []).append(str(data.get("task", "")))
    elif host and kind == "runner_on_unreachable":
        message = str((data.get("res") or {}).get("msg", "unreachable"))
        result.failed.setdefault(host, f"unreachable: {message.strip()[:300]}")
    if (
        host
        and progress is not None
        and kind in ("runner_on_start", "runner_on_ok", "runner_on_failed", "runner_on_unreachable")
    ):
        progress(host, kind.removeprefix("runner_on_"), str(data.get("task", "")))
    if kind == "playbook_on_stats":
        for host_name, count in (data.get("changed") or {}).items():
            result.changed[host_name] = int(count)
        seen = set()
        for key in ("ok", "changed", "skipped", "failures", "dark", "rescued"):
            seen |= set((data.get(key) or {}).keys())
        result.ok = seen - set(result.failed)


def run_playbook(
    playbook: str,
    inventory: Path,
    *,
    limit: list[str] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    secret_vars: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
    check: bool = False,
    forks: int = 20,
) -> PlayResult:
    # ansible-runner looks ansible-playbook up on this process's PATH: use ours.
    tools = str(Path(sys.executable).parent)
    if tools not in os.environ.get("PATH", "").split(":"):
        os.environ["PATH"] = f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    work = Path(tempfile.mkdtemp(prefix="acmefleet-run-"))
    os.chmod(work, 0o700)
    summary_file = work / "summary.json"
    result = PlayResult()
    try:
        cmdline = []
        if secret_vars:
            secret_file = work / "secret-vars.json"
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(dict(secret_vars), handle)
            cmdline.append(f"-e @{secret_file}")
        if check:
            cmdline.append("--check")

        def on_event(event: dict[str, Any]) -> bool:
            record_event(result, event, progress)
            return True

        runner = ansible_runner.run(
            private_data_dir=str(work),
            playbook=str(PLAYBOOKS / playbook),
            inventory=str(inventory.resolve()),
            limit=",".join(limit) if limit else None,
            extravars=dict(extra_vars or {}),
            cmdline=" ".join(cmdline) or None,
            envvars=_environment(summary_file),
            event_handler=on_event,
            quiet=True,
            forks=forks,
        )
        result.rc = int(runner.rc or 0)
        if result.rc != 0 and not result.failed:
            output = runner.stdout.read() if runner.stdout else ""
            result.tail = "\n".join(output.strip().splitlines()[-8:])
        if summary_file.exists():
            document = json.loads(summary_file.read_text())
            result.summary = {h["host"]: h for h in document.get("hosts", [])}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
