"""Output: JSON for scripts, aligned tables and ``key: value`` records for people."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

JSON = dict[str, Any]
Column = tuple[str, Callable[[JSON], object]]


def print_json(data: object) -> None:
    click.echo(json.dumps(data))


def short_time(value: object) -> str:
    """``2025-01-02T03:04:05Z`` as ``2025-01-02 03:04``; nothing as ``-``."""
    if not value:
        return "-"
    text = str(value)
    return f"{text[:10]} {text[11:16]}" if len(text) >= 16 and text[10] == "T" else text


def text(value: object) -> str:
    """A cell: printable characters only (names come from clients), ``-`` for nothing."""
    if value is None or value in ("", []):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    return "".join(c if c.isprintable() else "?" for c in str(value))


def col(header: str, key: str) -> Column:
    return header, lambda row: row.get(key)


def time_col(header: str, key: str) -> Column:
    return header, lambda row: short_time(row.get(key))


def print_table(rows: Sequence[JSON], columns: Sequence[Column]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[text(get(row)) for _, get in columns] for row in rows]
    headers = [header for header, _ in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for line in [headers, *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def print_record(pairs: Sequence[tuple[str, object]]) -> None:
    """``key: value`` lines, values aligned."""
    width = max(len(k) for k, _ in pairs) + 1
    for key, value in pairs:
        click.echo(f"{key + ':':<{width}} {text(value)}")


def emit(data: object, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print_json(data)
    else:
        human()
