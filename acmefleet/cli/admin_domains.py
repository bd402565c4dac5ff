"""``acmefleet admin domain``: an organisation's domains, their validation and delegation."""

from __future__ import annotations

import click

from acmefleet.cli.common import ROW_ID, json_option, usage_error
from acmefleet.cli.connection import RemoteTarget, connection_options, current_target, open_backend
from acmefleet.cli.render import JSON, col, emit, print_record, print_table, short_time, time_col

DAYS = click.IntRange(1, 825)
SCOPE = click.Choice(["exact", "subdomains"])
SCOPE_HELP = (
    "What the manual validation covers on public endpoints: 'exact' the name only (no "
    "wildcard), 'subdomains' also its subdomains and wildcards under it [default: exact]."
)


def _state(domain: JSON) -> str:
    if domain["validated"]:
        until = short_time(domain["validated_until"])[:10]
        method = domain["validation_method"]
        return f"validated by {method} until {until} ({_scope(domain['validation_scope'])})"
    return "not validated"


def _scope(scope: str | None) -> str:
    if scope == "subdomains":
        return "the name, its subdomains and wildcards"
    if scope == "exact":
        return "this name only"
    return "-"


@click.group()
def domain() -> None:
    """An organisation's domains (and IP networks), their validation and delegation."""


@domain.command("add")
@click.argument("org_ref", metavar="ORG")
@click.argument("domain_name", metavar="DOMAIN")
@click.option(
    "--validated",
    is_flag=True,
    help="Record a manual validation (public orders for what --scope covers need no challenge).",
)
@click.option("--justification", help="Why it is validated (kept in the audit log).")
@click.option("--days", type=DAYS, default=397, show_default=True, help="How long it holds.")
@click.option("--scope", type=SCOPE, help=SCOPE_HELP + " Goes with --validated.")
@connection_options
@json_option
def domain_add(
    org_ref: str,
    domain_name: str,
    validated: bool,
    justification: str | None,
    days: int,
    scope: str | None,
    as_json: bool,
) -> None:
    """Add a domain (or a CIDR network) to an organisation (ORG: name or id)."""
    if scope is not None and not validated:
        usage_error("--scope goes with --validated only")
    if validated and not justification and isinstance(current_target(), RemoteTarget):
        usage_error(
            "--validated needs --justification TEXT in remote mode (the audit log keeps it)"
        )
    with open_backend() as backend:
        added = backend.add_domain(
            org_ref,
            domain_name,
            validated=validated,
            justification=justification,
            days=days,
            scope=scope or "exact",
        )
    emit(
        added,
        as_json,
        lambda: click.echo(
            f"added {added['name']} to {org_ref} (id {added['id']}, {_state(added)})"
        ),
    )


@domain.command("list")
@click.argument("org_ref", metavar="ORG")
@connection_options
@json_option
def domain_list(org_ref: str, as_json: bool) -> None:
    """List an organisation's domains (ORG: name or id)."""
    with open_backend() as backend:
        rows = backend.list_domains(org_ref)
    columns = [
        col("ID", "id"),
        col("NAME", "name"),
        col("KIND", "kind"),
        col("VALIDATED", "validated"),
        time_col("UNTIL", "validated_until"),
        col("METHOD", "validation_method"),
        col("SCOPE", "validation_scope"),
        col("CHECK PENDING", "check_method"),
    ]
    emit(rows, as_json, lambda: print_table(rows, columns))


@domain.command("show")
@click.argument("domain_id", type=ROW_ID)
@connection_options
@json_option
def domain_show(domain_id: int, as_json: bool) -> None:
    """Show a domain."""
    with open_backend() as backend:
        found = backend.get_domain(domain_id)
    emit(found, as_json, lambda: print_domain(found))


def print_domain(item: JSON) -> None:
    print_record(
        [
            ("id", item["id"]),
            ("name", item["name"]),
            ("kind", item["kind"]),
            ("organisation id", item["org_id"]),
            ("validated", item["validated"]),
            ("validated at", short_time(item["validated_at"])),
            ("validated until", short_time(item["validated_until"])),
            ("method", item["validation_method"]),
            ("scope", _scope(item["validation_scope"])),
            ("by", item["validated_by"]),
            ("check pending", item["check_method"] or "-"),
            ("check expires", short_time(item["check_expires"])),
        ]
    )


@domain.command("remove")
@click.argument("domain_id", type=ROW_ID)
@connection_options
@json_option
def domain_remove(domain_id: int, as_json: bool) -> None:
    """Remove a domain and its delegations (prints it as it was)."""
    with open_backend() as backend:
        removed = backend.remove_domain(domain_id)
    emit(removed, as_json, lambda: click.echo(f"removed {removed['name']} (id {domain_id})"))


@domain.command("validate")
@click.argument("domain_id", type=ROW_ID)
@click.option(
    "--manual", is_flag=True, help="Vouch for the domain yourself (needs --justification)."
)
@click.option(
    "--http01",
    is_flag=True,
    help="Start an http-01 control check (then 'check'); validates the name only.",
)
@click.option(
    "--dns",
    is_flag=True,
    help="Start a DNS control check (then 'check'): a Random Value in a TXT record at "
    "_acmefleet-challenge.DOMAIN (CA/B BR 3.2.2.4.7); validates the name, its subdomains "
    "and wildcards.",
)
@click.option("--justification", help="Why you vouch for it (kept in the audit log).")
@click.option("--days", type=DAYS, help="How long a manual validation holds [default: 397].")
@click.option(
    "--scope",
    type=SCOPE,
    help=SCOPE_HELP + " An http-01 check is always exact, a DNS check always subdomains.",
)
@connection_options
@json_option
def domain_validate(
    domain_id: int,
    manual: bool,
    http01: bool,
    dns: bool,
    justification: str | None,
    days: int | None,
    scope: str | None,
    as_json: bool,
) -> None:
    """Validate a domain: --manual --justification TEXT [--scope exact|subdomains],
    --http01 (prints what to serve; validates the name only), or --dns (prints the TXT
    record to create; validates the name, its subdomains and wildcards)."""
    if manual + http01 + dns != 1:
        usage_error("give one of --manual, --http01 or --dns")
    if manual and not justification:
        usage_error("--manual needs --justification TEXT")
    if not manual and (justification or days or scope):
        usage_error(
            "--justification, --days and --scope go with --manual only "
            "(an http-01 check validates the name only, a DNS check also its subdomains "
            "and wildcards)"
        )
    with open_backend() as backend:
        if manual:
            assert justification is not None
            done = backend.validate_manually(
                domain_id, justification=justification, days=days or 397, scope=scope or "exact"
            )
        elif dns:
            done = backend.start_dns(domain_id)
        else:
            done = backend.start_http01(domain_id)
    if manual:
        emit(done, as_json, lambda: click.echo(f"{done['name']} is {_state(done)}"))
        return
    emit(done, as_json, lambda: _print_pending(domain_id, done))


def _print_pending(domain_id: int, pending: JSON) -> None:
    if pending["method"] == "dns":
        click.echo(f"DNS check started for {pending['domain']}; create this TXT record:")
        rows = [
            ("name", pending["record_name"]),
            ("type", pending["record_type"]),
            ("value", pending["random_value"]),
        ]
    else:
        click.echo(f"http-01 check started for {pending['domain']}; serve this content:")
        rows = [
            ("URL", pending["url"]),
            ("content", pending["expected_content"]),
            ("token", pending["token"]),
        ]
    print_record(
        [
            *rows,
            ("expires", short_time(pending["expires"])),
            ("scope once checked", _scope(pending["scope"])),
        ]
    )
    click.echo(f"then run: acmefleet admin domain check {domain_id}")


@domain.command("check")
@click.argument("domain_id", type=ROW_ID)
@connection_options
@json_option
def domain_check(domain_id: int, as_json: bool) -> None:
    """Run the started check (http-01 or DNS): the domain is validated if it shows the
    value (its web server serves the content, or its TXT record holds the Random Value)."""
    with open_backend() as backend:
        done = backend.check_domain(domain_id)
    emit(done, as_json, lambda: click.echo(f"{done['name']} is {_state(done)}"))


@domain.command("unvalidate")
@click.argument("domain_id", type=ROW_ID)
@connection_options
@json_option
def domain_unvalidate(domain_id: int, as_json: bool) -> None:
    """Withdraw a domain's validation."""
    with open_backend() as backend:
        done = backend.unvalidate(domain_id)
    emit(done, as_json, lambda: click.echo(f"{done['name']} is {_state(done)}"))


@domain.command("delegate")
@click.argument("domain_id", type=ROW_ID)
@click.option("--account", "account_id", help="An ACME account id of the organisation.")
@click.option("--eab-kid", help="An EAB key id of the organisation (its future account).")
@connection_options
@json_option
def domain_delegate(
    domain_id: int, account_id: str | None, eab_kid: str | None, as_json: bool
) -> None:
    """Delegate a domain to one account (or EAB credential) of its organisation."""
    if (account_id is None) == (eab_kid is None):
        usage_error("give one of --account ID or --eab-kid KID")
    with open_backend() as backend:
        made = backend.delegate(domain_id, account_id=account_id, eab_kid=eab_kid)
    to = f"account {account_id}" if account_id else f"EAB credential {eab_kid}"
    emit(
        made,
        as_json,
        lambda: click.echo(f"delegation {made['id']}: domain {domain_id} to {to}"),
    )


@domain.command("delegations")
@click.argument("domain_id", type=ROW_ID)
@connection_options
@json_option
def domain_delegations(domain_id: int, as_json: bool) -> None:
    """List a domain's delegations."""
    with open_backend() as backend:
        rows = backend.list_delegations(domain_id)
    columns = [
        col("ID", "id"),
        col("ACCOUNT", "account_id"),
        col("EAB KID", "eab_kid"),
        time_col("CREATED", "created"),
    ]
    emit(rows, as_json, lambda: print_table(rows, columns))


@domain.command("undelegate")
@click.argument("delegation_id", type=ROW_ID)
@connection_options
@json_option
def domain_undelegate(delegation_id: int, as_json: bool) -> None:
    """Remove a delegation (by its id, see 'delegations')."""
    with open_backend() as backend:
        backend.undelegate(delegation_id)
    emit(
        {"id": delegation_id, "removed": True},
        as_json,
        lambda: click.echo(f"removed delegation {delegation_id}"),
    )
