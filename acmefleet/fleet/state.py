"""Each host's roll-out outcome and the run's plan, saved when a run ends.

The state holds what ``--resume`` continues from: the waves as planned (host names per wave),
the ``--waves`` and ``--max-fail`` the run was given, and per host its outcome, the wave it
belonged to and when each phase ran (epoch seconds, for the report's timeline). A run replaces
the outcomes of the hosts it handles: hosts left out of it (``--limit``) keep theirs.
Without ``--resume`` the state is not read: every run checks every host over TLS.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

HostStatus = Literal["enrolled", "skipped", "failed", "not-attempted", "would-enrol"]
Phase = Literal["tls", "preflight", "packages", "eab", "enrol", "verify"]
# Phases a host goes through, in order; each is recorded as [start, end] (epoch seconds).
PHASES: tuple[Phase, ...] = ("tls", "preflight", "packages", "eab", "enrol", "verify")


class StateError(ValueError):
    """The state file cannot be read (``--resume``); exit code 2."""


@dataclass
class HostOutcome:
    host: str
    stack: str
    status: HostStatus
    names: list[str] = field(default_factory=list)
    serial: str | None = None
    issuer: str | None = None
    not_after: str | None = None
    duration: float | None = None
    error: str | None = None
    wave: int | None = None
    eab_kid: str | None = None  # minted for this host in this run (never the HMAC)
    changes: int | None = None  # tasks that changed (or would, with --check)
    would_change: list[str] = field(default_factory=list)  # --check: those tasks' names
    phases: dict[str, list[float]] = field(default_factory=dict)
    failed_phase: Phase | None = None  # the phase a failed host failed in (for the report)

    @property
    def done(self) -> bool:
        return self.status in ("enrolled", "skipped")

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> HostOutcome:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


@dataclass
class RolloutState:
    inventory: str
    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    plan: list[list[str]] = field(default_factory=list)  # host names per wave, as planned
    waves: str | None = None  # the --waves the plan was made with
    max_fail: str | None = None  # the --max-fail the run was given

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        document = {
            "inventory": self.inventory,
            "waves": self.waves,
            "max_fail": self.max_fail,
            "plan": self.plan,
            "hosts": {name: asdict(o) for name, o in sorted(self.hosts.items())},
        }
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".state-")
        with os.fdopen(handle, "w") as out:
            json.dump(document, out, indent=2)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path, inventory: str) -> RolloutState:
        if not path.exists():
            return cls(inventory)
        try:
            raw = json.loads(path.read_text())
            hosts = {n: HostOutcome.from_json(v) for n, v in raw.get("hosts", {}).items()}
            plan = [[str(h) for h in wave] for wave in raw.get("plan", [])]
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise StateError(f"cannot read the roll-out state {path}: {exc}") from exc
        return cls(
            raw.get("inventory", inventory), hosts, plan, raw.get("waves"), raw.get("max_fail")
        )
