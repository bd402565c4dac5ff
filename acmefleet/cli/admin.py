"""``acmefleet admin``: the console's operations, on a data directory or over the REST API."""

from __future__ import annotations

import click

from acmefleet.cli.admin_domains import domain
from acmefleet.cli.admin_eab import eab
from acmefleet.cli.admin_inventory import account, cert
from acmefleet.cli.admin_meta import audit, endpoint
from acmefleet.cli.admin_orgs import org
from acmefleet.cli.admin_tokens import token


@click.group()
def admin() -> None:
    """Administer organisations, domains, EAB credentials, accounts and certificates.

    Every command works either on the server's data directory (--data-dir DIR or env
    ACMEFLEET_DATA_DIR: local mode, one database transaction per command) or on a running
    server over its REST API (--url URL or env ACMEFLEET_URL: remote mode, with the token from
    --token-file FILE or env ACMEFLEET_TOKEN, and the server's CA from --ca-bundle FILE or env
    ACMEFLEET_CA_BUNDLE). Remote settings may also come from ~/.config/acmefleet/cli.toml
    (env ACMEFLEET_CLI_CONFIG): keys url, token_file or token (then the file must be 0600),
    ca_bundle. --json prints the REST API's JSON in either mode.

    ORG is an organisation's exact name or its numeric id. Account and certificate ids may
    start with '-': put them after '--' (acmefleet admin cert show --json -- -Qgm5...).
    """


for command in (org, domain, endpoint, eab, account, cert, audit, token):
    admin.add_command(command)
