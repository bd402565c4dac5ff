"""``acmefleet server init|run`` and ``acmefleet demo``: the server on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from acmefleet.cli.common import fail, write_secret_file

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="ACMEFLEET_DATA_DIR",
    required=True,
    help="The server's data directory (env ACMEFLEET_DATA_DIR).",
)


def _expected_errors(*extra: type[Exception]) -> tuple[type[Exception], ...]:
    from acmefleet.ca.errors import CaError
    from acmefleet.config import ConfigError
    from acmefleet.console.errors import ConsoleError
    from acmefleet.errors import StoreUnavailable
    from acmefleet.server.datadir import DataDirError
    from acmefleet.upstream.errors import UpstreamError

    return (
        ConsoleError,
        DataDirError,
        ConfigError,
        CaError,
        StoreUnavailable,
        UpstreamError,
        OSError,
        *extra,
    )


@click.group()
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
@click.option(
    "--tls-name",
    "tls_names",
    multiple=True,
    help="Another name (or IP) for the server's own TLS certificate (repeatable).",
)
@click.option(
    "--database-url",
    envvar="ACMEFLEET_DATABASE_URL",  # a URL with a password stays out of process arguments
    help="Keep the state in this PostgreSQL database (postgresql+psycopg://user@host/db"
    "?passfile=FILE) instead of SQLite in the data directory; it must be empty of acmefleet."
    " Also read from ACMEFLEET_DATABASE_URL.",
)
def server_init(
    data_dir: Path,
    base_url: str | None,
    pki_base_url: str | None,
    listen: str,
    pki_listen: str,
    ca_passphrase_file: Path | None,
    admin_token_file: Path | None,
    tls_names: tuple[str, ...],
    database_url: str | None,
) -> None:
    """Create the CA hierarchies, the database, the default endpoints and an admin token."""
    from acmefleet.clock import SystemClock
    from acmefleet.config import load_config, public_pki_warnings
    from acmefleet.server.datadir import initialise, read_passphrase

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
            extra_tls_names=tls_names,
            database_url=database_url,
        )
        data = done.data
        if admin_token_file is not None:
            write_secret_file(admin_token_file, done.admin_token)
    except _expected_errors() as exc:
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
    from acmefleet.config import load_config
    from acmefleet.server.datadir import require_initialised
    from acmefleet.server.runner import ListenError, WorkerError, run

    try:
        config = load_config(require_initialised(data_dir).root)
        run(
            data_dir,
            listen=listen or config.listen,
            pki_listen=None if no_pki_listen else (pki_listen or config.pki_listen),
            workers=workers,
            log_level=log_level,
        )
    except _expected_errors(ListenError, WorkerError) as exc:
        fail(str(exc))


@server.command("migrate")
@data_dir_option
def server_migrate(data_dir: Path) -> None:
    """Bring the configured database to this version's schema (run also does it on start).

    Safe to run from every replica at once: one migrates, the others wait and find it done.
    """
    from alembic.util import CommandError

    from acmefleet.server.datadir import require_initialised
    from acmefleet.store.migrate import upgrade

    try:
        database = require_initialised(data_dir).open_database()
        try:
            before, after = upgrade(database)
        finally:
            database.dispose()
    except CommandError as exc:  # a revision this version does not know: a newer release's
        fail(f"cannot migrate: {exc} (was the database migrated by a newer acmefleet?)")
    except _expected_errors() as exc:
        fail(str(exc))
    if before == after:
        click.echo(f"the database is at the newest schema ({after})")
    else:
        click.echo(f"migrated the database from {before or 'nothing'} to {after}")


@server.command("upstream-account")
@data_dir_option
@click.argument("name")
def server_upstream_account(data_dir: Path, name: str) -> None:
    """Register this server's account at the upstream CA NAME ([upstreams.NAME]), or find it.

    Makes the account key (0600) on first use, registers with the upstream's EAB credential,
    and keeps the account's URL; run again, it says which account is in use. After a restore
    that lost the URL, the account is found again by its key (onlyReturnExisting).
    """
    import asyncio

    from acmefleet.config import load_config
    from acmefleet.server.datadir import require_initialised
    from acmefleet.server.upstream import ensure_account

    try:
        config = load_config(require_initialised(data_dir).root)
        upstream = config.upstreams.get(name)
        if upstream is None:
            known = ", ".join(sorted(config.upstreams)) or "none"
            fail(f"no [upstreams.{name}] in the configuration (configured: {known})")
        account = asyncio.run(ensure_account(data_dir, upstream))
    except _expected_errors() as exc:
        fail(str(exc))
    words = {
        "kept": "in use",
        "found": "found again by its key",
        "registered": "registered",
    }
    click.echo(f"upstream {name}: account {words[account.how]}: {account.url}")


@click.command("demo")
@click.option("--down", is_flag=True, help="Remove the demo's test hosts.")
@click.option(
    "--local",
    is_flag=True,
    help="No test hosts: a server on this machine, enrolled by local certbot and lego.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("/var/lib/acmefleet-demo"),
    show_default=True,
    help="With --local: where the demo server keeps its state.",
)
@click.option("--listen", default="127.0.0.1:8555", show_default=True, help="With --local.")
@click.option("--pki-listen", default="127.0.0.1:8556", show_default=True, help="With --local.")
@click.option(
    "--wait/--no-wait",
    default=False,
    show_default=True,
    help="With --local: keep the server running after the demo.",
)
@click.option(
    "--stack",
    "stack_names",
    multiple=True,
    help="A Linux stack of meta/stacks.yml to enrol one host of (repeatable; default: "
    "certbot_apache and lego_nginx), e.g. --stack certbot_nginx.",
)
def demo(
    down: bool,
    local: bool,
    data_dir: Path,
    listen: str,
    pki_listen: str,
    wait: bool,
    stack_names: tuple[str, ...],
) -> None:
    """A real roll-out on local test hosts (ACME server, Apache+Certbot, Nginx+Lego)."""
    if local:
        from acmefleet.server_demo import run_demo

        try:
            sys.exit(
                run_demo(data_dir, listen=listen, pki_listen=pki_listen, wait=wait, echo=click.echo)
            )
        except _expected_errors(RuntimeError) as exc:
            fail(str(exc))
    from rich.console import Console

    from acmefleet.fleet import rollout_demo
    from acmefleet.lab.hosts import Lab
    from acmefleet.lab.system import LabError

    try:
        if down:
            rollout_demo.down(Lab(), click.echo)
            return
        console = Console(width=None if sys.stdout.isatty() else 160)
        sys.exit(rollout_demo.run(console, click.echo, stack_names))
    except _expected_errors(LabError, RuntimeError) as exc:
        fail(str(exc))
