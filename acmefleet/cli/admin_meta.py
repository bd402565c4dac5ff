"""``acmefleet admin endpoint list`` and ``admin audit``."""

from __future__ import annotations

import click

from acmefleet.cli.common import json_option
from acmefleet.cli.connection import connection_options, open_backend
from acmefleet.cli.render import JSON, col, emit, print_table, time_col


@click.group()
def endpoint() -> None:
    """The server's ACME endpoints."""


@endpoint.command("list")
@connection_options
@json_option
def endpoint_list(as_json: bool) -> None:
    """List the ACME endpoints and their directory URLs."""
    with open_backend() as backend:
        rows = backend.list_endpoints()

    def profiles(row: JSON) -> str:
        return ", ".join(
            f"{name}*" if name == row["default_profile"] else name for name in row["profiles"]
        )

    columns = [
        col("NAME", "name"),
        col("TYPE", "type"),
        col("CA", "ca"),
        ("PROFILES (*=DEFAULT)", profiles),
        col("DIRECTORY", "directory"),
    ]
    emit(rows, as_json, lambda: print_table(rows, columns))


@click.group("audit", invoke_without_command=True)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="How many events, newest first.",
)
@connection_options
@json_option
@click.pass_context
def audit(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The audit log, newest first; ``audit verify`` checks its hash chain."""
    if ctx.invoked_subcommand is not None:
        return
    with open_backend() as backend:
        rows = backend.audit(limit)
    columns = [
        col("ID", "id"),
        time_col("AT", "at"),
        col("ACTOR", "actor"),
        col("ACTION", "action"),
        col("TARGET", "target"),
        col("SOURCE", "source"),
        col("DETAILS", "details"),
    ]
    emit(rows, as_json, lambda: print_table(rows, columns))


@audit.command("verify")
@connection_options
@json_option
def audit_verify(as_json: bool) -> None:
    """Recompute the audit log's hash chain; exit 1 if an event was edited, deleted,
    inserted or reordered. Keep the printed head hash elsewhere: a later run whose chain
    no longer passes through it shows that the whole log was rewritten."""
    with open_backend() as backend:
        report = backend.verify_audit()
    if as_json:
        emit(report, True, lambda: None)
    elif report["intact"]:
        click.echo(f"intact: {report['events']} events, head {report['head_hash']}")
    else:
        click.echo(f"TAMPERED: {report['events']} events read", err=True)
        for problem in report["problems"]:
            click.echo(f"  {problem}", err=True)
    if not report["intact"]:
        raise SystemExit(1)
