"""``acmefleet admin org``: organisations."""

from __future__ import annotations

from typing import Literal

import click

from acmefleet.cli.common import json_option
from acmefleet.cli.connection import connection_options, open_backend
from acmefleet.cli.render import (
    JSON,
    col,
    emit,
    print_record,
    print_table,
    short_time,
    time_col,
)

ORG_HELP = "ORG is an organisation's exact name or its numeric id."


def print_org(org: JSON) -> None:
    print_record(
        [
            ("id", org["id"]),
            ("name", org["name"]),
            ("status", org["status"]),
            ("created", short_time(org["created"])),
        ]
    )


@click.group()
def org() -> None:
    """Organisations (ORG: an exact name or a numeric id)."""


@org.command("create")
@click.argument("name")
@connection_options
@json_option
def org_create(name: str, as_json: bool) -> None:
    """Create an organisation."""
    with open_backend() as backend:
        created = backend.create_org(name)
    emit(
        created,
        as_json,
        lambda: click.echo(f"created organisation {created['name']} (id {created['id']})"),
    )


@org.command("list")
@connection_options
@json_option
def org_list(as_json: bool) -> None:
    """List organisations."""
    with open_backend() as backend:
        rows = backend.list_orgs()
    emit(
        rows,
        as_json,
        lambda: print_table(
            rows,
            [
                col("ID", "id"),
                col("NAME", "name"),
                col("STATUS", "status"),
                time_col("CREATED", "created"),
            ],
        ),
    )


@org.command("show", epilog=ORG_HELP)
@click.argument("ref", metavar="ORG")
@connection_options
@json_option
def org_show(ref: str, as_json: bool) -> None:
    """Show an organisation."""
    with open_backend() as backend:
        found = backend.get_org(ref)
    emit(found, as_json, lambda: print_org(found))


def _set_status(ref: str, status: Literal["active", "disabled"], as_json: bool) -> None:
    with open_backend() as backend:
        changed = backend.set_org_status(ref, status)
    emit(
        changed,
        as_json,
        lambda: click.echo(f"organisation {changed['name']} is {changed['status']}"),
    )


@org.command("disable", epilog=ORG_HELP)
@click.argument("ref", metavar="ORG")
@connection_options
@json_option
def org_disable(ref: str, as_json: bool) -> None:
    """Disable an organisation: no new EAB credentials, accounts or orders for it."""
    _set_status(ref, "disabled", as_json)


@org.command("enable", epilog=ORG_HELP)
@click.argument("ref", metavar="ORG")
@connection_options
@json_option
def org_enable(ref: str, as_json: bool) -> None:
    """Enable a disabled organisation again."""
    _set_status(ref, "active", as_json)
