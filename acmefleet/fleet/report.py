"""The roll-out report: a table for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from acmefleet.fleet.state import HostOutcome

STYLE = {
    "enrolled": "green",
    "skipped": "green",
    "failed": "red",
    "not-attempted": "yellow",
    "would-enrol": "cyan",
}


def as_json(outcomes: Iterable[HostOutcome]) -> list[dict[str, object]]:
    return [
        {
            "host": o.host,
            "stack": o.stack,
            "status": o.status,
            "names": o.names,
            "serial": o.serial,
            "issuer": o.issuer,
            "not_after": o.not_after,
            "duration": round(o.duration, 2) if o.duration is not None else None,
            "wave": o.wave,
            "error": o.error,
            "changes": o.changes,
            "would_change": o.would_change,
            "phases": o.phases,
            "failed_phase": o.failed_phase,
        }
        for o in sorted(outcomes, key=lambda o: o.host)
    ]


def write_json(outcomes: Iterable[HostOutcome], path: Path) -> None:
    path.write_text(json.dumps(as_json(outcomes), indent=2) + "\n")


def print_table(outcomes: Iterable[HostOutcome], console: Console) -> None:
    table = Table(title="acmefleet roll-out", show_lines=False)
    for column in (
        "host",
        "stack",
        "status",
        "names",
        "serial",
        "issuer",
        "not after",
        "s",
        "error / would change",
    ):
        table.add_column(column, overflow="fold")
    for o in sorted(outcomes, key=lambda o: o.host):
        table.add_row(
            o.host,
            o.stack,
            f"[{STYLE.get(o.status, 'white')}]{o.status}[/]",
            ", ".join(o.names),
            (o.serial or "")[:16],
            o.issuer or "",
            (o.not_after or "")[:10],
            f"{o.duration:.1f}" if o.duration is not None else "",
            o.error or "; ".join(o.would_change),
        )
    console.print(table)
