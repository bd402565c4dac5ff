"""``acmefleet rollout`` and ``acmefleet status`` (registered on the main command group)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click


# The heavy parts (ansible, rich, the TLS prober) are imported when a command runs,
# so the rest of the command line starts quickly.
def _usage(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _check_bundle(bundle: Path, flag: str = "--ca-bundle") -> None:
    """A CA bundle that holds no certificate is a usage error, not a failure on every host."""
    import ssl

    try:
        ssl.create_default_context(cafile=str(bundle))
    except (ssl.SSLError, OSError) as exc:
        _usage(f"{flag} {bundle}: no certificate in it ({exc})")


def _probe_options(command: Any) -> Any:
    """--probe and --probe-parallel, shared by rollout and status."""
    command = click.option(
        "--probe-parallel",
        default=32,
        show_default=True,
        type=click.IntRange(1, 256),
        help="Hosts probed at once (SSH or WinRM connections in flight).",
    )(command)
    return click.option(
        "--probe",
        type=click.Choice(["paramiko", "ssh"]),
        default="paramiko",
        show_default=True,
        help="How SSH hosts are probed: in-process (paramiko), or the ssh client (for "
        "settings only ~/.ssh/config or a jump host gives).",
    )(command)


@click.command("rollout")
@click.option("-i", "--inventory", type=click.Path(path_type=Path), required=True)
@click.option("--limit", help="Ansible host pattern: only these hosts.")
@click.option(
    "--waves",
    help="Wave sizes: counts or percentages of the fleet; the first is the canary "
    "[default: 1,10%,100%, or with --resume the resumed run's].",
)
@click.option(
    "--max-fail",
    help="Failures a wave may have (N or P% of the wave) "
    "[default: 0, or with --resume the resumed run's].",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the last run: hosts it recorded done are left alone, the others go on "
    "from the wave that stopped it.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Verify, preflight, and run the enrolment in Ansible's check mode: shows what "
    "would change per host; changes, deploys and mints nothing.",
)
@click.option("--server-exists", is_flag=True, help="Do not deploy the ACME server.")
@click.option(
    "--min-days",
    default=30,
    show_default=True,
    type=click.IntRange(0, 3650),
    help="A host serving a certificate with fewer days left is enrolled again.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="Where state, tokens and the CA bundle are kept (default: INVENTORY_DIR/.acmefleet).",
)
@click.option(
    "--report",
    "report_json",
    type=click.Path(path_type=Path),
    help="Also write the report as JSON here.",
)
@click.option(
    "--report-html",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the report page here (it is always written as report.html in the "
    "state directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--api-url", help="ACME server URL (with --server-exists).")
@click.option("--token-file", type=click.Path(path_type=Path), help="Console token file.")
@click.option("--ca-bundle", type=click.Path(path_type=Path), help="The server's CA bundle.")
@click.option(
    "--trust-bundle",
    type=click.Path(path_type=Path),
    help="More CAs the hosts' certificates may chain to, besides the server's own: the "
    "root of the upstream CA a relayed endpoint takes its certificates from (default: the "
    "inventory's acmefleet_trust_bundle).",
)
@click.option("--awx-url", help="Hand each wave to this AWX / AAP controller (https://...).")
@click.option(
    "--awx-job-template",
    help="The AWX job template (id or name) that runs playbooks/enroll.yml.",
)
@click.option(
    "--awx-token-file",
    type=click.Path(path_type=Path),
    help="File holding an AWX OAuth2 token (read at run time, never printed).",
)
@click.option(
    "--awx-ca-bundle",
    type=click.Path(path_type=Path),
    help="CA bundle to verify AWX with (default: the system's trust store).",
)
@_probe_options
def rollout(
    inventory: Path,
    limit: str | None,
    waves: str | None,
    max_fail: str | None,
    resume: bool,
    check: bool,
    server_exists: bool,
    min_days: int,
    state_dir: Path | None,
    report_json: Path | None,
    report_html: Path | None,
    as_json: bool,
    api_url: str | None,
    token_file: Path | None,
    ca_bundle: Path | None,
    trust_bundle: Path | None,
    awx_url: str | None,
    awx_job_template: str | None,
    awx_token_file: Path | None,
    awx_ca_bundle: Path | None,
    probe: str,
    probe_parallel: int,
) -> None:
    """Enrol a fleet: preflight, a fresh EAB per host, waves, verification, report."""
    from rich.console import Console

    from acmefleet.console.client import ApiError
    from acmefleet.fleet import report
    from acmefleet.fleet.awx import AwxError, AwxSettings
    from acmefleet.fleet.core import parse_options
    from acmefleet.fleet.inventory import InventoryError
    from acmefleet.fleet.rollout import RolloutError, load
    from acmefleet.fleet.state import StateError
    from acmefleet.fleet.waves import BudgetSpecError, WaveSpecError

    console = Console(stderr=as_json, width=None if sys.stdout.isatty() else 160)
    # Every option is parsed and checked before anything runs: a bad value never reaches
    # a host, mints nothing and writes no state.
    try:
        awx = None
        if awx_url or awx_job_template or awx_token_file:
            if not (awx_url and awx_job_template and awx_token_file):
                _usage("--awx-url, --awx-job-template and --awx-token-file go together")
            awx = AwxSettings(awx_url, awx_token_file, awx_job_template, awx_ca_bundle)
            awx.token()  # a missing or empty token file is a usage error, before anything runs
        given_files = (
            ("--token-file", token_file),
            ("--ca-bundle", ca_bundle),
            ("--trust-bundle", trust_bundle),
        )
        for flag, given in given_files:
            if given is not None and not given.is_file():
                _usage(f"{flag} {given}: no such file")
        for flag, bundle in given_files[1:]:
            if bundle is not None:
                _check_bundle(bundle, flag)
        for flag, target in (("--report", report_json), ("--report-html", report_html)):
            if target is not None and not target.resolve().parent.is_dir():
                _usage(f"{flag} {target}: its directory does not exist")
            if target is not None and target.is_dir():
                _usage(f"{flag} {target}: is a directory")
        options = parse_options(
            inventory,
            waves=waves,
            max_fail=max_fail,
            limit=limit,
            resume=resume,
            check=check,
            deploy_server=not server_exists,
            state_dir=state_dir,
            min_days=min_days,
            report_json=report_json,
            report_html=report_html,
            api_url=api_url,
            token_file=token_file,
            ca_bundle=ca_bundle,
            trust_bundle=trust_bundle,
            awx=awx,
        )
        # the inventory and the saved state; no host yet
        planned = load(
            options,
            console,
            probe="ssh" if probe == "ssh" else "paramiko",
            probe_parallel=probe_parallel,
        )
        outcomes = planned.run()
    except (
        InventoryError,
        WaveSpecError,
        BudgetSpecError,
        RolloutError,
        AwxError,
        StateError,
    ) as exc:
        _usage(str(exc))
    except ApiError as exc:
        _usage(f"ACME server: {exc}")
    if report_json is not None:
        report.write_json(outcomes, report_json)
    if as_json:
        click.echo(json.dumps(report.as_json(outcomes), indent=2))
    else:
        report.print_table(outcomes, console)
    sys.exit(0 if all(o.done or o.status == "would-enrol" for o in outcomes) else 1)


@click.command("status")
@click.option("-i", "--inventory", type=click.Path(path_type=Path), required=True)
@click.option("--limit", help="Ansible host pattern: only these hosts.")
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path),
    help="CA bundle to verify with (default: the inventory's acmefleet_ca_bundle).",
)
@click.option(
    "--trust-bundle",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="More CAs the hosts' certificates may chain to (a relayed endpoint's upstream "
    "root; default: the inventory's acmefleet_trust_bundle).",
)
@click.option(
    "--server",
    "server_url",
    help="The ACME server's base URL, to ask its renewalInfo (default: the inventory's "
    "acmefleet_api_url; without one the renewal windows are not shown).",
)
@click.option(
    "--prometheus",
    "prometheus_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the figures for node_exporter's textfile collector to this file.",
)
@click.option("--json", "as_json", is_flag=True)
@_probe_options
def status(
    inventory: Path,
    limit: str | None,
    ca_bundle: Path | None,
    trust_bundle: Path | None,
    server_url: str | None,
    prometheus_file: Path | None,
    as_json: bool,
    probe: str,
    probe_parallel: int,
) -> None:
    """Every host's certificate as served now, its OCSP status and renewal window (RFC
    9773), and its renewal timers. Exits 1 when a host is flagged: unreachable, unverified,
    revoked, past its renewal window, or a renewal timer inactive."""
    from rich.console import Console

    from acmefleet.fleet import prometheus, tls
    from acmefleet.fleet.core import RolloutOptions
    from acmefleet.fleet.inventory import InventoryError, load_fleet
    from acmefleet.fleet.settings import inventory_path_var, ssh_options
    from acmefleet.fleet.status import collect, print_table
    from acmefleet.fleet.winrm_probe import WinrmContext

    try:
        fleet = load_fleet(inventory, limit)
        bundle = ca_bundle or inventory_path_var(fleet, inventory, "acmefleet_ca_bundle")
        if bundle is None and fleet.servers:
            directory = RolloutOptions(inventory=inventory).directory
            candidate = directory / f"{fleet.servers[0]}-ca-bundle.pem"
            bundle = candidate if candidate.exists() else None
        trust = trust_bundle or inventory_path_var(fleet, inventory, "acmefleet_trust_bundle")
        bundle = tls.hosts_bundle(bundle, trust, RolloutOptions(inventory=inventory).directory)
        rows = collect(
            fleet,
            bundle,
            ssh_options(fleet.hosts[0]),
            probe="ssh" if probe == "ssh" else "paramiko",
            parallel=probe_parallel,
            winrm=WinrmContext(inventory.resolve().parent, fleet.all_vars),
            server_url=server_url or _api_url(fleet.all_vars),
        )
    except InventoryError as exc:
        _usage(str(exc))
    now = tls.now()
    if prometheus_file is not None:
        prometheus.write(prometheus_file, rows, now)
    if as_json:
        click.echo(json.dumps([r.as_json(now) for r in rows], indent=2))
    else:
        print_table(rows, Console(width=None if sys.stdout.isatty() else 200))
    sys.exit(1 if any(r.flags(now) for r in rows) else 0)


def _api_url(all_vars: dict[str, object]) -> str | None:
    found = all_vars.get("acmefleet_api_url")
    return found if isinstance(found, str) and found.startswith("https://") else None


@click.command("renew")
@click.option("-i", "--inventory", type=click.Path(path_type=Path), required=True)
@click.option("--limit", help="Ansible host pattern: only these hosts.")
@click.option(
    "--waves",
    default="1,10%,100%",
    show_default=True,
    help="Wave sizes: counts or percentages of the hosts; the first is the canary.",
)
@click.option("--max-fail", help="Failures a wave may have (N or P% of the wave) [default: 0].")
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path),
    help="CA bundle to verify the served certificates with (default: the inventory's).",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the outcome of every host to this file (JSON).",
)
@click.option("--json", "as_json", is_flag=True)
@_probe_options
def renew(
    inventory: Path,
    limit: str | None,
    waves: str,
    max_fail: str | None,
    ca_bundle: Path | None,
    report_file: Path | None,
    as_json: bool,
    probe: str,
    probe_parallel: int,
) -> None:
    """Force renewal on the chosen hosts through their own ACME clients, in waves, and
    check over TLS that each serves its new certificate. Exits 1 when a host failed."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from acmefleet.fleet import renew as renewing
    from acmefleet.fleet.inventory import InventoryError, load_fleet
    from acmefleet.fleet.settings import inventory_path_var, ssh_options
    from acmefleet.fleet.waves import BudgetSpecError, WaveSpecError, parse_budget, parse_sizes
    from acmefleet.fleet.winrm_probe import WinrmContext

    try:
        parse_sizes(waves)
        budget = parse_budget(max_fail)
        fleet = load_fleet(inventory, limit)
        bundle = ca_bundle or inventory_path_var(fleet, inventory, "acmefleet_ca_bundle")
    except (WaveSpecError, BudgetSpecError, InventoryError) as exc:
        _usage(str(exc))
    if not fleet.hosts:
        _usage("no host to renew")
    outcomes = renewing.run(
        list(fleet.hosts),
        waves=waves,
        budget=budget,
        ssh_options=ssh_options(fleet.hosts[0]),
        ca_bundle=bundle,
        probe="ssh" if probe == "ssh" else "paramiko",
        parallel=probe_parallel,
        winrm=WinrmContext(inventory.resolve().parent, fleet.all_vars),
    )
    rows = [o.as_json() for o in outcomes]
    if report_file is not None:
        report_file.write_text(json.dumps(rows, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        table = Table(title="acmefleet renew")
        for column in ("host", "wave", "status", "serial before", "serial after", "s", "error"):
            table.add_column(column, overflow="fold")
        for o in outcomes:
            colour = {"renewed": "green", "failed": "red"}.get(o.status, "yellow")
            table.add_row(
                escape(o.host),
                str(o.wave),
                f"[{colour}]{o.status}[/]",
                o.serial_before or "",
                o.serial_after or "",
                f"{o.seconds:.0f}",
                escape(o.error or ""),  # a host's stderr, a served name: no markup
            )
        Console(width=None if sys.stdout.isatty() else 200).print(table)
    sys.exit(0 if all(o.status == "renewed" for o in outcomes) else 1)
