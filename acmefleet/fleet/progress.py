"""Live progress: a table that updates in a terminal, plain lines otherwise."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table


class Progress:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.live_mode = console.is_terminal
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[str, str]] = {}
        self._wave = ""
        self._started: dict[str, float] = {}
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(
                self._render(), console=self.console, refresh_per_second=4, transient=True
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

    def _render(self) -> Table:
        table = Table(title=self._wave or "acmefleet roll-out", expand=False)
        table.add_column("host")
        table.add_column("state")
        table.add_column("task / detail", overflow="ellipsis", max_width=70)
        for host, (state, detail) in sorted(self._rows.items()):
            colour = {"failed": "red", "done": "green", "skipped": "green"}.get(state, "cyan")
            table.add_row(host, f"[{colour}]{state}[/]", detail)
        return table

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def line(self, text: str) -> None:
        with self._lock:
            if self._live is not None:
                self._live.console.print(text)
            else:
                self.console.print(text, highlight=False)

    def wave(self, number: int, total: int, hosts: list[str]) -> None:
        with self._lock:
            self._wave = f"wave {number}/{total}: {len(hosts)} host(s)"
            for host in hosts:
                self._rows[host] = ("queued", "")
                self._started[host] = time.monotonic()
            self._refresh()
        self.line(f"wave {number}/{total}: {', '.join(hosts)}")

    def host(self, host: str, state: str, detail: str = "") -> None:
        with self._lock:
            previous = self._rows.get(host, ("", ""))[0]
            self._rows[host] = (state, detail)
            self._refresh()
        if not self.live_mode and state != previous and state in ("failed", "done", "skipped"):
            self.line(f"  {host}: {state}{' - ' + detail if detail else ''}")

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
            self._rows[host] = (state, task)
            self._refresh()
        if not self.live_mode and state == "failed":
            self.line(f"  {host}: failed in {task}")
