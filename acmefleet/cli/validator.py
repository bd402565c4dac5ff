"""``acmefleet validator run``: a remote network perspective (CA/B BR 3.2.2.9) on this host."""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from pathlib import Path

import click

from acmefleet.cli.common import fail


@click.group()
def validator() -> None:
    """Run a validator agent: a remote perspective the ACME server asks over mutual TLS."""


@validator.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ACMEFLEET_VALIDATOR_CONFIG",
    required=True,
    help="The agent's TOML configuration (env ACMEFLEET_VALIDATOR_CONFIG).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def validator_run(config_path: Path, log_level: str) -> None:
    """Serve checks until SIGTERM or SIGINT."""
    from acmefleet.agent.config import load_agent_config
    from acmefleet.agent.server import run_agent
    from acmefleet.config import ConfigError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_agent_config(config_path)
    except ConfigError as exc:
        fail(str(exc))

    def ready(where: str) -> None:
        print(f"acmefleet validator listening on {where}", file=sys.stderr, flush=True)

    try:
        asyncio.run(run_agent(config, ready))
    except (OSError, ValueError, ssl.SSLError) as exc:
        fail(f"the validator agent could not start: {exc}")
