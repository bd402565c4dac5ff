"""``acmefleet admin eab``: External Account Binding credentials."""

from __future__ import annotations

import click

from acmefleet.cli.common import json_option
from acmefleet.cli.connection import connection_options, open_backend
from acmefleet.cli.render import (
    JSON,
    col,
    emit,
    print_json,
    print_record,
    print_table,
    short_time,
    time_col,
)


def _listing(credential: JSON) -> JSON:
    # ``account`` is what ``eab list --json`` printed before the REST API existed; kept for
    # scripts (the API's name for it is ``account_id``).
    return {**credential, "account": credential.get("account_id")}


def print_credential(item: JSON) -> None:
    print_record(
        [
            ("key id", item["kid"]),
            ("organisation", f"{item['org']} (id {item['org_id']})"),
            ("endpoint", item["endpoint"]),
            ("status", item["status"]),
            ("account", item["account_id"]),
            ("created", short_time(item["created"])),
            ("expires", short_time(item["expires"])),
            ("bound", short_time(item["bound"])),
            ("revoked", short_time(item["revoked"])),
        ]
    )


@click.group()
def eab() -> None:
    """External Account Binding credentials."""


@eab.command("create")
@click.option("--org", "org_ref", required=True, help="The organisation (name or id).")
@click.option("--endpoint", required=True, help="The ACME endpoint the credential is for.")
@click.option("--days", type=click.FloatRange(min=0.001), help="Lifetime (default: config).")
@connection_options
@json_option
def eab_create(org_ref: str, endpoint: str, days: float | None, as_json: bool) -> None:
    """Mint a single-use EAB credential; the HMAC key is shown this once."""
    with open_backend() as backend:
        minted = backend.mint_eab(org_ref, endpoint, days=days)
        bundle = backend.ca_bundle
    if as_json:
        print_json(
            {
                "kid": minted["kid"],
                "hmac_key": minted["hmac_key"],
                "directory": minted["directory"],
                "ca_bundle": bundle,
                "expires": minted["expires"],
                "endpoint": minted["endpoint"],
            }
        )
        return
    click.echo(f"key id:    {minted['kid']}")
    click.echo(f"HMAC key:  {minted['hmac_key']}   (shown once; it is erased when used)")
    click.echo(f"directory: {minted['directory']}")
    if bundle:
        click.echo(f"CA bundle: {bundle}")
    click.echo(f"expires:   {short_time(minted['expires'])} UTC")


@eab.command("list")
@connection_options
@json_option
def eab_list(as_json: bool) -> None:
    """List EAB credentials and their state (never the HMAC key)."""
    with open_backend() as backend:
        rows = [_listing(c) for c in backend.list_eab()]
    columns = [
        col("KID", "kid"),
        col("ORG", "org"),
        col("ENDPOINT", "endpoint"),
        col("STATUS", "status"),
        col("ACCOUNT", "account_id"),
        time_col("EXPIRES", "expires"),
    ]
    emit(rows, as_json, lambda: print_table(rows, columns))


@eab.command("show")
@click.argument("kid")
@connection_options
@json_option
def eab_show(kid: str, as_json: bool) -> None:
    """Show an EAB credential (never its HMAC key)."""
    with open_backend() as backend:
        found = backend.get_eab(kid)
    emit(found, as_json, lambda: print_credential(found))


@eab.command("revoke")
@click.argument("kid")
@connection_options
@json_option
def eab_revoke(kid: str, as_json: bool) -> None:
    """Revoke an unused EAB credential."""
    with open_backend() as backend:
        done = backend.revoke_eab(kid)
    emit(done, as_json, lambda: click.echo(f"revoked {kid}"))
