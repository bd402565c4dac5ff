# Copyright: acmefleet developers
# Apache License 2.0
"""Callback plugin: write an enrolment summary (host, stack, names, serial, expiry) as JSON."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: enrolment_summary
type: aggregate
short_description: Write a JSON enrolment summary of an acmefleet playbook run
description:
  - Collects the C(acmefleet_enrolment) fact that the enrolment playbook sets on each host
    (names, serial, issuer, not_after) and each host's failures, and writes one JSON document
    when the run ends.
  - Enable it with C(callbacks_enabled = acmefleet.fleet.enrolment_summary).
version_added: 0.1.0
author: acmefleet developers
options:
  output_file:
    description: Where to write the summary.
    type: path
    default: acmefleet-enrolment.json
    env:
      - name: ACMEFLEET_ENROLMENT_SUMMARY
    ini:
      - section: acmefleet_enrolment_summary
        key: output_file
"""

import json
import os
import tempfile
from datetime import datetime, timezone
from typing import Any

from ansible.plugins.callback import CallbackBase

FACT = "acmefleet_enrolment"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "acmefleet.fleet.enrolment_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, dict[str, Any]] = {}

    def _host(self, name: str) -> dict[str, Any]:
        return self.hosts.setdefault(name, {"host": name, "status": "ok", "error": None})

    def v2_runner_on_ok(self, result: Any) -> None:
        facts = result._result.get("ansible_facts") or {}
        if FACT in facts:
            self._host(result._host.get_name()).update(facts[FACT])

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if ignore_errors:
            return
        entry = self._host(result._host.get_name())
        entry["status"] = "failed"
        # Only the task name and Ansible's message: a module's output may hold secrets.
        message = result._result.get("msg", "failed")
        if result._result.get("_ansible_no_log") or result._task.no_log:
            message = "failed (output hidden by no_log)"
        entry["error"] = f"{result._task.get_name()}: {message}"

    def v2_runner_on_unreachable(self, result: Any) -> None:
        entry = self._host(result._host.get_name())
        entry["status"] = "unreachable"
        entry["error"] = str(result._result.get("msg", "unreachable"))

    def v2_playbook_on_stats(self, stats: Any) -> None:
        path = self.get_option("output_file")
        document = {
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "hosts": sorted(self.hosts.values(), key=lambda h: h["host"]),
        }
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".enrolment-")
        with os.fdopen(handle, "w") as out:
            json.dump(document, out, indent=2)
        os.replace(temporary, path)
