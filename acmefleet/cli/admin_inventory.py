"""``acmefleet admin account`` and ``admin cert``: ACME accounts and issued certificates."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from acmefleet.cli.common import json_option
from acmefleet.cli.connection import connection_options, open_backend
from acmefleet.cli.render import JSON, col, emit, print_record, print_table, short_time, time_col


@click.group()
def account() -> None:
    """ACME accounts."""


@account.command("list")
@connection_options
@json_option
def account_list(as_json: bool) -> None:
    """List ACME accounts."""
    with open_backend() as backend:
        rows = backend.list_accounts()
    columns = [
        col("ID", "id"),
        col("ENDPOINT", "endpoint"),
        col("ORG ID", "org_id"),
        col("STATUS", "status"),
        col("CONTACT", "contact"),
        col("EAB KID", "eab_kid"),
        time_col("CREATED", "created"),
    ]
    emit(rows, as_json, lambda: print_table(rows, columns))


def print_account(item: JSON) -> None:
    print_record(
        [
            ("id", item["id"]),
            ("endpoint", item["endpoint"]),
            ("organisation id", item["org_id"]),
            ("status", item["status"]),
            ("contact", item["contact"]),
            ("EAB key id", item["eab_kid"]),
            ("key thumbprint", item["key_thumbprint"]),
            ("created", short_time(item["created"])),
        ]
    )


@account.command("show")
@click.argument("account_id", metavar="ID")
@connection_options
@json_option
def account_show(account_id: str, as_json: bool) -> None:
    """Show an ACME account."""
    with open_backend() as backend:
        found = backend.get_account(account_id)
    emit(found, as_json, lambda: print_account(found))


@account.command("deactivate")
@click.argument("account_id", metavar="ID")
@connection_options
@json_option
def account_deactivate(account_id: str, as_json: bool) -> None:
    """Deactivate an ACME account for good (RFC 8555 §7.3.6)."""
    with open_backend() as backend:
        done = backend.deactivate_account(account_id)
    emit(done, as_json, lambda: click.echo(f"account {done['id']} is {done['status']}"))


@click.group()
def cert() -> None:
    """Issued certificates."""


@cert.command("list")
@click.option("--org", "org_ref", help="Of this organisation (name or id).")
@click.option("--endpoint", help="Issued by this ACME endpoint.")
@click.option("--name", help="With a name containing this text.")
@click.option(
    "--expiring-within",
    "expiring_within",
    type=click.IntRange(0, 3650),
    metavar="DAYS",
    help="Valid now, expiring within DAYS days.",
)
@click.option("--revoked/--valid", "revoked", default=None, help="Only revoked, or unrevoked.")
@connection_options
@json_option
def cert_list(
    org_ref: str | None,
    endpoint: str | None,
    name: str | None,
    expiring_within: int | None,
    revoked: bool | None,
    as_json: bool,
) -> None:
    """List issued certificates, filtered."""
    with open_backend() as backend:
        rows = backend.list_certificates(
            org=org_ref,
            endpoint=endpoint,
            name=name,
            expiring_within_days=expiring_within,
            revoked=revoked,
        )
    columns = [
        col("ID", "id"),
        col("SERIAL", "serial"),
        col("NAMES", "names"),
        col("ENDPOINT", "endpoint"),
        time_col("NOT AFTER", "not_after"),
        col("DAYS LEFT", "days_left"),
        time_col("REVOKED", "revoked"),
    ]
    emit(rows, as_json, lambda: print_table(rows, columns))


def print_certificate(item: JSON) -> None:
    print_record(
        [
            ("id", item["id"]),
            ("serial", item["serial"]),
            ("names", item["names"]),
            ("organisation id", item["org_id"]),
            ("endpoint", item["endpoint"]),
            ("CA", item["ca"]),
            ("profile", item["profile"]),
            ("account", item["account_id"]),
            ("not before", short_time(item["not_before"])),
            ("not after", short_time(item["not_after"])),
            ("days left", item["days_left"]),
            ("revoked", short_time(item["revoked"])),
            ("revocation reason", item["revocation_reason"]),
            *_renewal_lines(item),
        ]
    )


def _renewal_lines(item: JSON) -> list[tuple[str, object]]:
    window = item.get("renewal_window")
    if window is None:
        return []
    return [
        ("renew from", short_time(window["start"])),
        ("renew by", short_time(window["end"])),
        ("renewal set because", window["reason"]),
        ("replaced", item["replaced"]),
    ]


@cert.command("show")
@click.argument("cert_id", metavar="ID")
@connection_options
@json_option
def cert_show(cert_id: str, as_json: bool) -> None:
    """Show a certificate."""
    with open_backend() as backend:
        found = backend.get_certificate(cert_id)
    emit(found, as_json, lambda: print_certificate(found))


def _write_atomically(path: Path, content: str) -> None:
    """All of the file or none of it: written aside, then moved in place."""
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path())
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


@cert.command("download")
@click.argument("cert_id", metavar="ID")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the PEM chain to this file (default: stdout).",
)
@connection_options
@json_option
def cert_download(cert_id: str, output: Path | None, as_json: bool) -> None:
    """The certificate and its chain, in PEM."""
    with open_backend() as backend:
        pem = backend.certificate_pem(cert_id)
        if output is not None:
            _write_atomically(output, pem)
    if output is None:
        emit({"id": cert_id, "pem": pem}, as_json, lambda: click.echo(pem, nl=False))
        return
    where = str(output.resolve())
    emit({"id": cert_id, "file": where}, as_json, lambda: click.echo(f"wrote {where}"))


@cert.command("revoke")
@click.argument("cert_id", metavar="ID")
@click.option(
    "--reason",
    type=click.IntRange(0, 10),
    default=0,
    show_default=True,
    help="RFC 5280 reason code (1 keyCompromise, 4 superseded, 5 cessationOfOperation...).",
)
@connection_options
@json_option
def cert_revoke(cert_id: str, reason: int, as_json: bool) -> None:
    """Revoke a certificate (it appears in the CRL)."""
    with open_backend() as backend:
        done = backend.revoke_certificate(cert_id, reason=reason)
    emit(
        done,
        as_json,
        lambda: click.echo(f"revoked certificate {done['serial']} (reason {reason})"),
    )


@cert.command("pull-forward")
@click.option("--org", "org_ref", help="Of this organisation (name or id).")
@click.option("--endpoint", help="Issued by this ACME endpoint.")
@click.option("--issuer", help="Issued by this CA: 'private', 'public' or 'upstream:NAME'.")
@click.option("--name", help="Holding this name (a host's), exactly.")
@click.option(
    "--serial", "serials", multiple=True, help="This serial (hex, colons allowed); repeatable."
)
@click.option("--reason", required=True, help="Why (audited; not shown to ACME clients).")
@click.option(
    "--within",
    "within_hours",
    type=click.FloatRange(1 / 60, 90 * 24),
    default=24.0,
    show_default=True,
    metavar="HOURS",
    help="Renew within this many hours from now.",
)
@connection_options
@json_option
def cert_pull_forward(
    org_ref: str | None,
    endpoint: str | None,
    issuer: str | None,
    name: str | None,
    serials: tuple[str, ...],
    reason: str,
    within_hours: float,
    as_json: bool,
) -> None:
    """Pull renewal windows forward (RFC 9773 ARI) for the selected certificates in force.

    Hosts renew within the window: ARI clients by themselves, the collection's hosts through
    their renew-check timer. Revoke the old certificates once the hosts serve new ones."""
    with open_backend() as backend:
        done = backend.pull_forward_renewals(
            org=org_ref,
            endpoint=endpoint,
            issuer=issuer,
            name=name,
            serials=serials,
            reason=reason,
            within_hours=within_hours,
        )
    window = done["window"]
    emit(
        done,
        as_json,
        lambda: click.echo(
            f"{done['count']} certificates to renew between {short_time(window['start'])} "
            f"and {short_time(window['end'])}"
        ),
    )
