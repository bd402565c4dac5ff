"""Run a playbook of the collection with ansible-playbook, streaming its events as progress.

The events come from the collection's callback ``acmefleet.fleet.events`` as JSON lines on a
pipe this process opens for it: the host, the task, when it started and ended, whether it
changed, a failure's message (never a module's output). ansible-runner did this before, at
about 2 s of controller CPU per host more than the playbook itself (its display callback
writes every event to a file and into stdout, and its parent reads stdout through pexpect;
benchmarks/profile_rollout.py): this runner costs what ``ansible-playbook`` costs.

Pre-minted EAB credentials reach the play through a 0600 vars file in a private directory
(``-e @file``), never through the command line or the environment; the directory is removed
when the run ends.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from acmefleet.fleet.collection import COLLECTION_ROOT
from acmefleet.fleet.inventory import collection_environment

PLAYBOOKS = COLLECTION_ROOT / "playbooks"
CALLBACKS = "acmefleet.fleet.enrolment_summary,acmefleet.fleet.events"
TAIL_LINES = 8
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
    """When a package task ran on a host, from an event's data (None: not one, or skipped,
    or no timing). The events callback (and AWX's) stamps each result with its host's start
    and end as ISO 8601 times."""
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


def _environment(summary_file: Path, events_fd: int) -> dict[str, str]:
    tools = str(Path(sys.executable).parent)  # ansible-playbook of this installation
    return {
        **os.environ,
        **collection_environment(),
        "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CALLBACKS_ENABLED": CALLBACKS,
        "ACMEFLEET_ENROLMENT_SUMMARY": str(summary_file),
        "ACMEFLEET_EVENTS_FD": str(events_fd),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }


def _ansible_playbook() -> str:
    local = Path(sys.executable).with_name("ansible-playbook")
    return str(local) if local.exists() else "ansible-playbook"


def _private_json(path: Path, document: Mapping[str, Any]) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(dict(document), handle)
    return path


def stream_events(process: subprocess.Popen[bytes], events: int) -> Iterator[dict[str, Any]]:
    """The JSON lines on ``events`` until the playbook exits (and what it wrote before).

    Not until EOF alone: a program Ansible started could still hold the pipe open (the
    callback makes it non-inheritable, so this is the belt to that braces)."""
    pending, exited = b"", False
    while True:
        # once the playbook has exited, only what is already in the pipe is left to read
        ready, _, _ = select.select([events], [], [], 0 if exited else 0.5)
        if not ready:
            if exited:
                return
            exited = process.poll() is not None
            continue
        chunk = os.read(events, 65536)
        if not chunk:
            return  # EOF: every writer is gone
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue  # not ours to fail on: the playbook's result is still reported


def _failure_message(data: dict[str, Any]) -> str:
    result = data.get("res", {}) or {}
    task = data.get("task", "?")
    if result.get("_ansible_no_log"):
        return f"{task}: failed (output hidden by no_log)"
    return f"{task}: {str(result.get('msg', 'failed')).strip()[:400]}"


def record_event(result: PlayResult, event: Mapping[str, Any], progress: ProgressFn | None) -> None:
    """Fold one event (the events callback's, or an AWX job's) into the result (and report
    it as progress)."""
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
    work = Path(tempfile.mkdtemp(prefix="acmefleet-run-"))
    os.chmod(work, 0o700)
    summary_file = work / "summary.json"
    result = PlayResult()
    command = [_ansible_playbook(), "-i", str(inventory.resolve()), "--forks", str(forks)]
    if limit:
        command += ["--limit", ",".join(limit)]
    if extra_vars:
        command += ["-e", f"@{_private_json(work / 'vars.json', extra_vars)}"]
    if secret_vars:
        command += ["-e", f"@{_private_json(work / 'secret-vars.json', secret_vars)}"]
    if check:
        command.append("--check")
    command.append(str(PLAYBOOKS / playbook))
    read_end, write_end = os.pipe()
    output = (work / "output.log").open("w+b")
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_environment(summary_file, write_end),
            pass_fds=(write_end,),
            cwd=work,
        )
        os.close(write_end)
        write_end = -1
        try:
            for event in stream_events(process, read_end):
                record_event(result, event, progress)
            result.rc = process.wait()
        finally:
            if process.poll() is None:  # interrupted: the playbook must not run on alone
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if result.rc != 0 and not result.failed:
            output.seek(0)
            lines = output.read().decode(errors="replace").strip().splitlines()
            result.tail = "\n".join(lines[-TAIL_LINES:])
        if summary_file.exists():
            document = json.loads(summary_file.read_text())
            result.summary = {h["host"]: h for h in document.get("hosts", [])}
        return result
    finally:
        output.close()
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
        shutil.rmtree(work, ignore_errors=True)
