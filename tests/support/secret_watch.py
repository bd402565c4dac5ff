"""Watch every process's command line and environment for a secret while something runs."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@dataclass
class SecretWatch:
    """Samples ``/proc/*/cmdline`` and ``/proc/*/environ`` every few milliseconds.

    ``hits`` names the processes (never the secret) whose argv or environment held
    ``needle``; ``seen`` counts, per marker, the command lines that held it, so a test can
    tell the watch ran while the processes it cares about were alive.
    """

    needle: bytes
    markers: tuple[str, ...] = ()
    interval: float = 0.003
    samples: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        own = str(os.getpid())
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == own:
                    continue
                for part in ("cmdline", "environ"):
                    try:
                        data = Path(f"/proc/{pid}/{part}").read_bytes()
                    except OSError:
                        continue
                    if self.needle in data:
                        self.hits.append(f"/proc/{pid}/{part} ({_comm(pid)})")
                    if part == "cmdline":
                        for marker in self.markers:
                            if marker.encode() in data:
                                self.seen[marker] = self.seen.get(marker, 0) + 1
            self.samples += 1
            self.stop.wait(self.interval)


@contextmanager
def watching(
    needle: str, markers: tuple[str, ...] = (), interval: float = 0.003
) -> Iterator[SecretWatch]:
    """A running :class:`SecretWatch`, stopped when the block ends."""
    watch = SecretWatch(needle.encode(), markers, interval)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join()
