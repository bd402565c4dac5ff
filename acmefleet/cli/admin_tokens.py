"""``acmefleet admin token``: console API tokens, on the data directory only.

The REST API does not manage tokens (a token cannot mint its own successors), so these
commands need ``--data-dir``.
"""

from __future__ import annotations

from pathlib import Path

import click

from acmefleet.cli.common import fail, json_option, write_secret_file
from acmefleet.cli.connection import connection_options, open_local
from acmefleet.cli.render import col, emit, print_table, time_col

WHAT = "console token commands"


@click.group()
def token() -> None:
    """Console API tokens (local mode only: --data-dir)."""


@token.command("create")
@click.option("--name", required=True, help="Who or what uses the token.")
@click.option(
    "--role",
    type=click.Choice(["admin", "auditor"]),
    required=True,
    help="admin may change things; auditor may only read.",
)
@click.option(
    "--output-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the token to this new file (0600) instead of stdout.",
)
@connection_options
@json_option
def token_create(name: str, role: str, output_file: Path | None, as_json: bool) -> None:
    """Create a console API token; it is shown (or written) this once."""
    if output_file is not None and output_file.exists():
        fail(f"{output_file} exists; refusing to overwrite it")
    with open_local(WHAT) as backend:
        secret, made = backend.create_token(name, role)
        if output_file is not None:
            write_secret_file(output_file, secret)  # inside the transaction: all or nothing
    if output_file is not None:
        where = str(output_file.resolve())
        emit(
            {**made, "token_file": where},
            as_json,
            lambda: click.echo(f"created token {made['id']} ({role}); written to {where} (0600)"),
        )
        return
    emit(
        {**made, "token": secret},
        as_json,
        lambda: click.echo(f"created token {made['id']} ({role}); shown once:\n{secret}"),
    )


@token.command("list")
@connection_options
@json_option
def token_list(as_json: bool) -> None:
    """List console tokens (never their secrets)."""
    with open_local(WHAT) as backend:
        rows = backend.list_tokens()
    columns = [
        col("ID", "id"),
        col("NAME", "name"),
        col("ROLE", "role"),
        time_col("CREATED", "created"),
        col("BY", "created_by"),
        time_col("REVOKED", "revoked"),
    ]
    emit(rows, as_json, lambda: print_table(rows, columns))


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@connection_options
@json_option
def token_revoke(token_id: str, as_json: bool) -> None:
    """Revoke a console token (its web sessions end too)."""
    with open_local(WHAT) as backend:
        done = backend.revoke_token(token_id)
    emit(done, as_json, lambda: click.echo(f"revoked token {token_id} ({done['name']})"))
