"""``python -m acmefleet.lab``: bring lab hosts up and down (Molecule and scripts use it)."""

from __future__ import annotations

import json
import sys

import click

from acmefleet.lab.hosts import DEFAULT_LAB_DIR, Lab
from acmefleet.lab.rootfs import DEFAULT_SUITE, LAB_USER, SUITES
from acmefleet.lab.system import LabError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def lab() -> None:
    """Disposable Debian test hosts (needs root)."""


@lab.command("up")
@click.argument("name")
@click.argument("index", type=int)
@click.option(
    "--suite",
    type=click.Choice(SUITES),
    default=DEFAULT_SUITE,
    show_default=True,
    help="Debian release of the host (bookworm = 12, trixie = 13).",
)
def up(name: str, index: int, suite: str) -> None:
    """Start host NAME at 10.77.0.INDEX and wait until SSH answers."""
    try:
        host = Lab(DEFAULT_LAB_DIR).up(name, index, suite)
    except LabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(host.as_json()))


@lab.command("down")
@click.argument("names", nargs=-1)
def down(names: tuple[str, ...]) -> None:
    """Stop hosts and remove everything they left."""
    for name in names:
        Lab(DEFAULT_LAB_DIR).down(name)


@lab.command("list")
def list_hosts() -> None:
    """The hosts that are up, as JSON."""
    click.echo(json.dumps([h.as_json() for h in Lab(DEFAULT_LAB_DIR).list()]))


@lab.command("status")
@click.argument("names", nargs=-1)
def status(names: tuple[str, ...]) -> None:
    """Whether each host (default: every host) runs, what listens in it, its console."""
    current = Lab(DEFAULT_LAB_DIR)
    for name in names or tuple(h.name for h in current.list()):
        click.echo(current.diagnose(name))


@lab.command("ssh-config")
def ssh_config() -> None:
    """The SSH key, known_hosts file and sudo user Ansible should use for lab hosts."""
    current = Lab(DEFAULT_LAB_DIR)
    click.echo(
        json.dumps(
            {
                "private_key": str(current.ssh_key),
                "known_hosts": str(current.known_hosts),
                "sudo_user": LAB_USER,
            }
        )
    )


@lab.command("cleanup")
def cleanup() -> None:
    """Every host down; the bridge and the egress guard removed (the cache is kept)."""
    Lab(DEFAULT_LAB_DIR).cleanup()


if __name__ == "__main__":
    lab()
