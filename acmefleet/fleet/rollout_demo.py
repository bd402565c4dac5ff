"""``acmefleet demo``: a real roll-out on local test hosts (``--local``: acmefleet.server_demo).

Disposable Debian hosts (an ACME server, and one web host per chosen stack: by default
Apache+Certbot and Nginx+Lego; ``--stack`` picks any Linux stack of the registry
meta/stacks.yml, e.g. certbot_nginx) are made with the lab harness, described in a fleet
inventory, and enrolled by ``acmefleet rollout``; then the status table shows what each host
serves. ``--down`` removes the hosts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from acmefleet.fleet import report, rollout, stacks
from acmefleet.fleet.core import parse_options
from acmefleet.fleet.inventory import load_fleet
from acmefleet.fleet.settings import ssh_options
from acmefleet.fleet.status import collect, print_table
from acmefleet.lab.fleet import bring_up, host_names, inventory_document, write_inventory
from acmefleet.lab.hosts import Lab

DEMO_DIR = Path("/var/lib/acmefleet/demo")
DEFAULT_STACKS = ("certbot_apache", "lego_nginx")
DemoHost = tuple[str, int, str | None]  # name, lab index, stack (None: the ACME server)
SERVER: DemoHost = ("demo-acme", 100, None)
# The first demo's host names are kept; other stacks get demo-s<index> from index 103 on.
_NAMED = {"certbot_apache": ("demo-apache", 101), "lego_nginx": ("demo-nginx", 102)}
Echo = Callable[[str], None]


def linux_stacks() -> list[str]:
    return [s.name for s in stacks.load().values() if not s.is_windows]


def demo_hosts(chosen: tuple[str, ...] = DEFAULT_STACKS) -> tuple[DemoHost, ...]:
    """The server and one web host per chosen stack (Linux stacks of the registry only)."""
    linux = linux_stacks()
    unknown = [name for name in chosen if name not in linux]
    if unknown:
        raise RuntimeError(f"demo: no Linux stack {', '.join(unknown)} (known: {', '.join(linux)})")
    hosts = [SERVER]
    for name in dict.fromkeys(chosen):
        # Lab host names have at most 11 characters: the others are named by their index.
        index = 103 + linux.index(name)
        host, index = _NAMED.get(name, (f"demo-s{index}", index))
        hosts.append((host, index, name))
    return tuple(hosts)


DEMO_HOSTS = demo_hosts()


def down(lab: Lab, echo: Echo) -> None:
    for name, _, _ in demo_hosts(tuple(linux_stacks())):
        if lab.get(name) is not None or lab.host_dir(name).exists():
            lab.down(name)
            echo(f"removed {name}")
    state = DEMO_DIR / ".acmefleet" / "rollout-state.json"
    state.unlink(missing_ok=True)


def run(console: Console, echo: Echo, chosen: tuple[str, ...] = DEFAULT_STACKS) -> int:
    planned = demo_hosts(chosen or DEFAULT_STACKS)
    lab = Lab()
    existing = {h.name: h for h in lab.list()}
    wanted = [(n, i) for n, i, _ in planned if n not in existing]
    if wanted:
        echo(
            f"starting test hosts: {', '.join(n for n, _ in wanted)} (first run builds the "
            "Debian image: a few minutes)"
        )
    started = {h.name: h for h in bring_up(lab, wanted)}
    hosts = {**existing, **started}
    server = hosts["demo-acme"]
    web = [(hosts[n], stack) for n, _, stack in planned if stack is not None]
    inventory = write_inventory(DEMO_DIR / "lab.fleet.yml", inventory_document(lab, server, web))
    echo(f"inventory: {inventory}")
    options = parse_options(inventory, waves="1,100%", min_days=30)
    outcomes = rollout.load(options, console).run()
    report.print_table(outcomes, console)
    fleet = load_fleet(inventory)
    bundle = options.directory / f"{server.name}-ca-bundle.pem"
    print_table(collect(fleet, bundle, ssh_options(fleet.hosts[0])), console)
    first_host, _ = web[0]
    name = host_names(first_host)[0]
    echo("Browse a host (its certificate chains to the demo CA):")
    echo(f"  curl --cacert {bundle} --resolve {name}:443:{first_host.address} https://{name}/")
    echo(
        f"Console: https://{server.address}:8555/console/ "
        f"(token in {options.directory / (server.name + '-admin-token')})"
    )
    echo(f"Again: acmefleet rollout -i {inventory}   Status: acmefleet status -i {inventory}")
    echo("Remove the hosts: acmefleet demo --down")
    failed = [o for o in outcomes if not o.done]
    if failed:
        echo(json.dumps(report.as_json(failed), indent=2))
    return 0 if not failed else 1
