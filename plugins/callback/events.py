# Copyright: acmefleet developers
# Apache License 2.0
"""Callback plugin: stream per-host task events as JSON lines to a file descriptor."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: events
type: aggregate
short_description: Stream an acmefleet playbook run's per-host task events as JSON lines
description:
  - Writes one JSON object per line for each task start, result (ok, failed,
    unreachable; skips are only counted) and the final statistics, to the file
    descriptor the controller process opened for it. C(acmefleet rollout) reads them as
    live progress and for its report.
  - Each event carries the host, the task's name and path, when the host started and ended
    it, whether it changed and, for a failure, Ansible's message only (never a module's
    output, and not even the message when the task has C(no_log)).
  - Enable it with C(callbacks_enabled = acmefleet.fleet.events); without the descriptor
    it writes nothing.
version_added: 0.2.0
author: acmefleet developers
options:
  fd:
    description: The open, writable file descriptor (a pipe) to write to.
    type: int
    env:
      - name: ACMEFLEET_EVENTS_FD
"""

import json
import os
from datetime import datetime, timezone
from typing import Any, TextIO

from ansible.plugins.callback import CallbackBase


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _name(task: Any) -> str:
    """The task's own name, as ansible-runner and AWX name it (no "role : " prefix)."""
    return str(task.name or task.action)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "acmefleet.fleet.events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._out: TextIO | None = None
        self._started: dict[tuple[str, str], str] = {}

    def set_options(self, *args: Any, **kwargs: Any) -> None:
        super().set_options(*args, **kwargs)
        fd = self.get_option("fd")
        if fd is None or self._out is not None:
            return
        # Not for the programs Ansible starts (ssh's ControlPersist master outlives the run
        # and would hold the pipe open): only this process writes to it.
        os.set_inheritable(int(fd), False)
        self._out = os.fdopen(int(fd), "w", encoding="utf-8", buffering=1)

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        if self._out is not None:
            self._out.write(json.dumps({"event": event, "event_data": data}) + "\n")

    def _task(self, result: Any) -> dict[str, Any]:
        host, task = result._host.get_name(), result._task
        return {
            "host": host,
            "task": _name(task),
            "task_path": task.get_path(),
            "start": self._started.pop((host, task._uuid), None),
            "end": _now(),
        }

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        name = host.get_name()
        self._started[(name, task._uuid)] = _now()
        self._emit(
            "runner_on_start", {"host": name, "task": _name(task), "task_path": task.get_path()}
        )

    def v2_runner_on_ok(self, result: Any) -> None:
        data = self._task(result)
        data["res"] = {"changed": bool(result._result.get("changed"))}
        self._emit("runner_on_ok", data)

    def v2_runner_on_skipped(self, result: Any) -> None:
        # Nobody reads skips (the statistics count them): not worth a line each.
        self._started.pop((result._host.get_name(), result._task._uuid), None)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        data = self._task(result)
        hidden = bool(result._result.get("_ansible_no_log") or result._task.no_log)
        data["ignore_errors"] = bool(ignore_errors)
        data["res"] = (
            {"_ansible_no_log": True}
            if hidden
            else {"msg": str(result._result.get("msg", "failed"))[:2000]}
        )
        self._emit("runner_on_failed", data)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        data = self._task(result)
        data["res"] = {"msg": str(result._result.get("msg", "unreachable"))[:2000]}
        self._emit("runner_on_unreachable", data)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._emit(
            "playbook_on_stats",
            {
                key: dict(getattr(stats, key, {}) or {})
                for key in ("ok", "changed", "skipped", "failures", "dark", "rescued")
            },
        )
        if self._out is not None:
            self._out.close()
            self._out = None
