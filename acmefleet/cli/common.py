"""What every command shares: one-line errors, secret files, the actor name, ``--json``."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

USAGE = 2  # the exit status of a usage error, as click uses it

# Row ids (organisations, domains, delegations) are positive signed 64-bit integers.
ROW_ID = click.IntRange(1, 2**63 - 1)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """A value no error message may show (the API token): ``fail`` masks it."""
    if secret:
        _secrets.add(secret)


def scrub(message: str) -> str:
    """One line, with every registered secret masked."""
    for secret in _secrets:
        message = message.replace(secret, "***")
    return " ".join(message.split())


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {scrub(message)}", err=True)
    sys.exit(code)


def usage_error(message: str) -> NoReturn:
    fail(message, USAGE)


def write_secret_file(path: Path, secret: str) -> None:
    """Create ``path`` readable by its owner only (never over an existing file), then write."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
