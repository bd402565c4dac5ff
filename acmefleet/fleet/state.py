"""Each host's roll-out outcome, saved when a run ends.

``--resume`` starts from the last run's outcomes, and the run replaces those of the hosts it
handles: hosts left out of it (``--limit``) keep theirs in the state and in the report.
Whether a host still needs enrolling is never read from here: every run checks every host
over TLS.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

HostStatus = Literal["enrolled", "skipped", "failed", "not-attempted", "would-enrol"]


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

    @property
    def done(self) -> bool:
        return self.status in ("enrolled", "skipped")


@dataclass
class RolloutState:
    inventory: str
    hosts: dict[str, HostOutcome] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        document = {
            "inventory": self.inventory,
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
        raw = json.loads(path.read_text())
        hosts = {name: HostOutcome(**value) for name, value in raw.get("hosts", {}).items()}
        return cls(raw.get("inventory", inventory), hosts)
