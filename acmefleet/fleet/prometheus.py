"""``acmefleet status --prometheus FILE``: the node_exporter textfile collector's format.

Written whole to a temporary file beside FILE, then renamed over it: the collector never
reads half a file. Label values are escaped as the exposition format says.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from acmefleet.fleet.status import FLAGS, HostStatus


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(rows: list[HostStatus], now: datetime) -> str:
    lines = [
        "# HELP acmefleet_certificate_days_left Days until the served certificate expires.",
        "# TYPE acmefleet_certificate_days_left gauge",
    ]
    for row in rows:
        days = row.served.days_left(now)
        if days is not None:
            labels = f'host="{_label(row.host)}",stack="{_label(row.stack)}"'
            lines.append(f"acmefleet_certificate_days_left{{{labels}}} {days}")
    lines += [
        "# HELP acmefleet_renewal_window_seconds The served certificate's RFC 9773 renewal "
        "window (Unix time).",
        "# TYPE acmefleet_renewal_window_seconds gauge",
    ]
    for row in rows:
        if row.window is not None:
            host = _label(row.host)
            lines.append(
                f'acmefleet_renewal_window_seconds{{host="{host}",edge="start"}} '
                f"{int(row.window.start.timestamp())}"
            )
            lines.append(
                f'acmefleet_renewal_window_seconds{{host="{host}",edge="end"}} '
                f"{int(row.window.end.timestamp())}"
            )
    lines += [
        "# HELP acmefleet_host_flag 1 when the host has the flag (see acmefleet status).",
        "# TYPE acmefleet_host_flag gauge",
    ]
    for row in rows:
        raised = set(row.flags(now))
        for flag in FLAGS:
            value = 1 if flag in raised else 0
            lines.append(f'acmefleet_host_flag{{host="{_label(row.host)}",flag="{flag}"}} {value}')
    return "\n".join(lines) + "\n"


def write(path: Path, rows: list[HostStatus], now: datetime) -> None:
    text = render(rows, now)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(staging, 0o644)  # read by the exporter's user; it holds no secret
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
