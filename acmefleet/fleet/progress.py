"""Live progress: a table that updates in a terminal, plain lines otherwise.

Each wave has a progress bar (hosts done / failed / left and an ETA at the pace of the
hosts already finished): under the table on a terminal, appended to each host's line
otherwise.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from acmefleet.fleet.core import eta

# enroll.yml's last task for a host (Linux and Windows plays): once it has run, the host's
# playbook work is over and only the controller's TLS verification is left. The ETA counts
# such hosts as finished, so it moves while a wave runs, not only when it ends.
LAST_TASK = "Read the certificate the web server serves"
FINISHED = ("done", "failed", "skipped")


def bar_text(done: int, failed: int, total: int, seconds: float | None, width: int = 24) -> str:
    """``━━━━━━────── 3 done · 1 failed · 4 left · ETA 1:20`` (ETA ``?`` until known)."""
    total = max(total, done + failed)
    left = total - done - failed
    filled = round(width * (done + failed) / total) if total else width
    shown = "?" if seconds is None else f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
    return (
        "━" * filled
        + "─" * (width - filled)
        + f" {done} done · {failed} failed · {left} left · ETA {shown}"
    )


class Progress:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.live_mode = console.is_terminal
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[str, str]] = {}
        self._wave = ""
        self._wave_hosts: set[str] = set()
        self._wave_started = time.monotonic()
        self._finished: set[str] = set()  # hosts of the wave whose playbook work is over
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            # Rendered at every refresh (4/s), so the ETA counts down between host events.
            self._live = Live(
                console=self.console,
                refresh_per_second=4,
                transient=True,
                get_renderable=self._render,
            )
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, value, trace)
            self._live = None

    def bar(self) -> str:
        """The current wave's progress bar (its hosts done, failed, left, and an ETA)."""
        # Copies first: Live's refresh thread renders this while hosts report (each copy is
        # one C call under the GIL, so no lock is taken that Live's own lock could cross).
        rows, hosts, over = dict(self._rows), set(self._wave_hosts), set(self._finished)
        states = [rows.get(h, ("", ""))[0] for h in hosts]
        done = sum(state in ("done", "skipped") for state in states)
        failed = sum(state == "failed" for state in states)
        finished = len(over | {h for h in hosts if rows.get(h, ("", ""))[0] in FINISHED})
        left = len(hosts) - finished
        seconds = eta(time.monotonic() - self._wave_started, finished, left)
        return bar_text(done, failed, len(hosts), seconds)

    def _render(self) -> RenderableType:
        table = Table(title=self._wave or "acmefleet roll-out", expand=False)
        table.add_column("host")
        table.add_column("state")
        table.add_column("task / detail", overflow="ellipsis", max_width=70)
        for host, (state, detail) in sorted(dict(self._rows).items()):
            colour = {"failed": "red", "done": "green", "skipped": "green"}.get(state, "cyan")
            table.add_row(host, f"[{colour}]{state}[/]", detail)
        if not self._wave_hosts:
            return table
        # the bar under the table, on one line of its own (a caption wraps at the table's width)
        return Group(table, Text(self.bar(), no_wrap=True, overflow="ellipsis"))

    def line(self, text: str) -> None:
        with self._lock:
            if self._live is not None:
                self._live.console.print(text)
            else:
                self.console.print(text, highlight=False)

    def wave(self, number: int, total: int, hosts: list[str]) -> None:
        with self._lock:
            self._wave = f"wave {number}/{total}: {len(hosts)} host(s)"
            self._wave_hosts = set(hosts)
            self._wave_started = time.monotonic()
            self._finished = set()
            for host in hosts:
                self._rows[host] = ("queued", "")
        self.line(f"wave {number}/{total}: {', '.join(hosts)}")

    def host(self, host: str, state: str, detail: str = "") -> None:
        with self._lock:
            previous = self._rows.get(host, ("", ""))[0]
            self._rows[host] = (state, detail)
            bar = f"  [{self.bar()}]" if host in self._wave_hosts else ""
        if not self.live_mode and state != previous and state in FINISHED:
            self.line(f"  {host}: {state}{' - ' + detail if detail else ''}{bar}")

    def event(self, host: str, kind: str, task: str) -> None:
        state = {
            "start": "running",
            "ok": "running",
            "failed": "failed",
            "unreachable": "failed",
        }.get(kind, "running")
        with self._lock:
            if self._rows.get(host, ("", ""))[0] == "failed":
                return
            if state == "failed" or (kind == "ok" and task.startswith(LAST_TASK)):
                self._finished.add(host)
            self._rows[host] = (state, task)
        if not self.live_mode and state == "failed":
            self.line(f"  {host}: failed in {task}")
