"""The ``acmefleet`` command line: a thin layer over the server, console and fleet rooms."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Connection

from acmefleet import __version__
from acmefleet.ca.errors import CaError
from acmefleet.clock import SystemClock
from acmefleet.config import ConfigError, load_config, public_pki_warnings
from acmefleet.console import credentials, organisations
from acmefleet.console.errors import ConsoleError
from acmefleet.server.datadir import DataDirError, initialise, read_passphrase, require_initialised
from acmefleet.store import orgs as org_store
from acmefleet.store.engine import open_database
from acmefleet.store.migrate import upgrade

F = TypeVar("F", bound=Callable[..., Any])
EXPECTED_ERRORS = (ConsoleError, DataDirError, ConfigError, CaError, OSError)

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="ACMEFLEET_DATA_DIR",
    required=True,
    help="The server's data directory (env ACMEFLEET_DATA_DIR).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def write_secret_file(path: Path, secret: str) -> None:
    """Create ``path`` readable by its owner only, then write the secret."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@contextmanager
def admin_transaction(data_dir: Path) -> Iterator[Connection]:
    """One write transaction on the data directory's database: all of a command, or nothing."""
    data = require_initialised(data_dir)
    database = open_database(data.database_url())
    try:
        upgrade(database)
        with database.write() as conn:
            yield conn
    finally:
        database.dispose()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acmefleet")
def main() -> None:
    """acmefleet: ACME with External Account Binding, and certificate roll-outs with Ansible."""


@main.group()
def server() -> None:
    """Initialise and run the ACME server."""


@server.command("init")
@data_dir_option
@click.option("--base-url", help="URL clients use (default https://localhost:PORT of --listen).")
@click.option("--pki-base-url", help="Plain-HTTP URL for issuer certificates and CRLs.")
@click.option("--listen", default="127.0.0.1:8555", show_default=True)
@click.option("--pki-listen", default="127.0.0.1:8556", show_default=True)
@click.option(
    "--ca-passphrase-file",
    type=click.Path(path_type=Path),
    help="Encrypt the CA keys with the passphrase in this file.",
)
@click.option(
    "--admin-token-file",
    type=click.Path(path_type=Path),
    help="Write the first console admin token to this file (0600) instead of stdout.",
)
def server_init(
    data_dir: Path,
    base_url: str | None,
    pki_base_url: str | None,
    listen: str,
    pki_listen: str,
    ca_passphrase_file: Path | None,
    admin_token_file: Path | None,
) -> None:
    """Create the CA hierarchies, the database, the default endpoints and an admin token."""
    port = listen.rpartition(":")[2]
    pki_port = pki_listen.rpartition(":")[2]
    if admin_token_file is not None and admin_token_file.exists():
        fail(f"{admin_token_file} exists; refusing to overwrite it")
    try:
        done = initialise(
            data_dir,
            base_url=base_url or f"https://localhost:{port}",
            pki_base_url=pki_base_url or f"http://localhost:{pki_port}",
            listen=listen,
            pki_listen=pki_listen,
            clock=SystemClock(),
            passphrase=read_passphrase(ca_passphrase_file),
        )
        data = done.data
        if admin_token_file is not None:
            write_secret_file(admin_token_file, done.admin_token)
    except EXPECTED_ERRORS as exc:
        fail(str(exc))
    click.echo(f"initialised {data.root}")
    click.echo(f"  configuration: {data.config}")
    click.echo(f"  CA bundle for clients: {data.ca_bundle}")
    config = load_config(data.root)
    for endpoint in config.endpoints.values():
        click.echo(
            f"  endpoint {endpoint.name} ({endpoint.type}): {config.directory_url(endpoint.name)}"
        )
    for warning in public_pki_warnings(config):
        click.echo(f"warning: {warning}", err=True)
    if admin_token_file is not None:
        click.echo(f"  console admin token written to {admin_token_file} (0600)")
    else:
        click.echo(f"  console admin token (shown once): {done.admin_token}")


@server.command("run")
@data_dir_option
@click.option("--listen", help="HOST:PORT for HTTPS (default: from the configuration).")
@click.option("--pki-listen", help="HOST:PORT for plain-HTTP /pki/ (default: configuration).")
@click.option("--no-pki-listen", is_flag=True, help="Do not open the plain-HTTP listener.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def server_run(
    data_dir: Path,
    listen: str | None,
    pki_listen: str | None,
    no_pki_listen: bool,
    workers: int,
    log_level: str,
) -> None:
    """Serve ACME over HTTPS until stopped."""
    from acmefleet.server.runner import ListenError, run

    try:
        config = load_config(require_initialised(data_dir).root)
        run(
            data_dir,
            listen=listen or config.listen,
            pki_listen=None if no_pki_listen else (pki_listen or config.pki_listen),
            workers=workers,
            log_level=log_level,
        )
    except (*EXPECTED_ERRORS, ListenError) as exc:
        fail(str(exc))


@main.group()
def admin() -> None:
    """Administer organisations, domains and EAB credentials."""


@admin.group()
def org() -> None:
    """Organisations."""


@org.command("create")
@click.argument("name")
@data_dir_option
@json_option
def org_create(name: str, data_dir: Path, as_json: bool) -> None:
    """Create an organisation."""
    try:
        with admin_transaction(data_dir) as conn:
            created = organisations.create(conn, name, actor=actor(), now=SystemClock().now())
    except EXPECTED_ERRORS as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"id": created.id, "name": created.name, "status": created.status}))
    else:
        click.echo(f"created organisation {created.name}")


@org.command("list")
@data_dir_option
@json_option
def org_list(data_dir: Path, as_json: bool) -> None:
    """List organisations."""
    try:
        with admin_transaction(data_dir) as conn:
            found = org_store.list_orgs(conn)
    except EXPECTED_ERRORS as exc:
        fail(str(exc))
    rows = [{"id": o.id, "name": o.name, "status": o.status} for o in found]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['name']:<40} {row['status']}")


@admin.group()
def domain() -> None:
    """An organisation's domains (and IP networks)."""


@domain.command("add")
@click.argument("org_name", metavar="ORG")
@click.argument("domain_name", metavar="DOMAIN")
@click.option(
    "--validated",
    is_flag=True,
    help="Record the domain as validated (public orders then need no challenge).",
)
@click.option("--justification", help="Why it is validated (kept in the audit log).")
@click.option(
    "--days",
    type=click.IntRange(1, 825),
    default=397,
    show_default=True,
    help="How long a validation holds.",
)
@data_dir_option
@json_option
def domain_add(
    org_name: str,
    domain_name: str,
    validated: bool,
    justification: str | None,
    days: int,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Add a domain (or a CIDR network) to an organisation."""
    try:
        with admin_transaction(data_dir) as conn:
            added = organisations.add_domain(
                conn,
                org_name,
                domain_name,
                validated=validated,
                actor=actor(),
                now=SystemClock().now(),
                justification=justification,
                lifetime=timedelta(days=days),
            )
    except EXPECTED_ERRORS as exc:
        fail(str(exc))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": added.name,
                    "kind": added.kind,
                    "validated_until": added.validated_until.isoformat()
                    if added.validated_until
                    else None,
                }
            )
        )
    else:
        state = (
            f"validated until {added.validated_until:%Y-%m-%d}"
            if added.validated_until
            else "not validated"
        )
        click.echo(f"added {added.name} to {org_name} ({state})")


@admin.group()
def eab() -> None:
    """External Account Binding credentials."""


@eab.command("create")
@click.option("--org", "org_name", required=True, help="The organisation the account belongs to.")
@click.option("--endpoint", required=True, help="The ACME endpoint the credential is for.")
@click.option("--days", type=click.FloatRange(min=0.001), help="Lifetime (default: config).")
@data_dir_option
@json_option
def eab_create(
    org_name: str, endpoint: str, days: float | None, data_dir: Path, as_json: bool
) -> None:
    """Mint a single-use EAB credential; the HMAC key is shown this once."""
    try:
        config = load_config(require_initialised(data_dir).root)
        with admin_transaction(data_dir) as conn:
            minted = credentials.mint(
                conn,
                config,
                org_name=org_name,
                endpoint=endpoint,
                actor=actor(),
                now=SystemClock().now(),
                lifetime=timedelta(days=days) if days else None,
            )
    except EXPECTED_ERRORS as exc:
        fail(str(exc))
    bundle = str(require_initialised(data_dir).ca_bundle.resolve())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "kid": minted.kid,
                    "hmac_key": minted.hmac_key,
                    "directory": minted.directory,
                    "ca_bundle": bundle,
                    "expires": minted.expires_at.isoformat(),
                }
            )
        )
        return
    click.echo(f"key id:    {minted.kid}")
    click.echo(f"HMAC key:  {minted.hmac_key}   (shown once; it is erased when used)")
    click.echo(f"directory: {minted.directory}")
    click.echo(f"CA bundle: {bundle}")
    click.echo(f"expires:   {minted.expires_at:%Y-%m-%d %H:%M} UTC")


@eab.command("list")
@data_dir_option
@json_option
def eab_list(data_dir: Path, as_json: bool) -> None:
    """List EAB credentials and their state (never the HMAC key)."""
    try:
        with admin_transaction(data_dir) as conn:
            found = credentials.list_credentials(conn)
            org_names = {o.id: o.name for o in org_store.list_orgs(conn)}
    except EXPECTED_ERRORS as exc:
        fail(str(exc))
    now = SystemClock().now()
    rows = [
        {
            "kid": c.kid,
            "org": org_names.get(c.org_id),
            "endpoint": c.endpoint,
            "status": c.state(now),
            "account": c.account_id,
            "created": c.created_at.isoformat(),
            "expires": c.expires_at.isoformat(),
        }
        for c in found
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'KID':<24} {'ORG':<20} {'ENDPOINT':<10} {'STATUS':<8} ACCOUNT")
    for row in rows:
        click.echo(
            f"{row['kid']:<24} {row['org'] or '':<20} {row['endpoint']:<10} "
            f"{row['status']:<8} {row['account'] or '-'}"
        )


@eab.command("revoke")
@click.argument("kid")
@data_dir_option
def eab_revoke(kid: str, data_dir: Path) -> None:
    """Revoke an unused EAB credential."""
    try:
        with admin_transaction(data_dir) as conn:
            credentials.revoke(conn, kid, actor=actor(), now=SystemClock().now())
    except EXPECTED_ERRORS as exc:
        fail(str(exc))
    click.echo(f"revoked {kid}")


@main.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("/var/lib/acmefleet-demo"),
    show_default=True,
    help="Where the demo server keeps its state.",
)
@click.option("--listen", default="127.0.0.1:8555", show_default=True)
@click.option("--pki-listen", default="127.0.0.1:8556", show_default=True)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Keep the server running after the demo (Ctrl-C stops it).",
)
def demo(data_dir: Path, listen: str, pki_listen: str, wait: bool) -> None:
    """Start a local ACME server and enrol real certbot and lego clients against it."""
    from acmefleet.demo import run_demo

    try:
        sys.exit(
            run_demo(data_dir, listen=listen, pki_listen=pki_listen, wait=wait, echo=click.echo)
        )
    except (*EXPECTED_ERRORS, RuntimeError) as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
