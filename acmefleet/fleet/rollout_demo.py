"""``acmefleet demo``: a real roll-out on local test hosts (``--local``: acmefleet.server_demo).

Three disposable Debian hosts (an ACME server, Apache+Certbot, Nginx+Lego) are made with
the lab harness, described in a fleet inventory, and enrolled by ``acmefleet rollout``;
then the status table shows what each host serves. ``--down`` removes the hosts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from acmefleet.fleet import report
from acmefleet.fleet.inventory import load_fleet
from acmefleet.fleet.rollout import Rollout, RolloutOptions
from acmefleet.fleet.settings import ssh_options
from acmefleet.fleet.status import collect, print_table
from acmefleet.lab.fleet import bring_up, host_names, inventory_document, write_inventory
from acmefleet.lab.hosts import Lab

DEMO_DIR = Path("/var/lib/acmefleet/demo")
DEMO_HOSTS = (
    ("demo-acme", 100, None),
    ("demo-apache", 101, "certbot_apache"),
    ("demo-nginx", 102, "lego_nginx"),
)
Echo = Callable[[str], None]


def down(lab: Lab, echo: Echo) -> None:
    for name, _, _ in DEMO_HOSTS:
        if lab.get(name) is not None or lab.host_dir(name).exists():
            lab.down(name)
            echo(f"removed {name}")
    state = DEMO_DIR / ".acmefleet" / "rollout-state.json"
    state.unlink(missing_ok=True)


def run(console: Console, echo: Echo) -> int:
    lab = Lab()
    existing = {h.name: h for h in lab.list()}
    wanted = [(n, i) for n, i, _ in DEMO_HOSTS if n not in existing]
    if wanted:
        echo(
            f"starting test hosts: {', '.join(n for n, _ in wanted)} (first run builds the "
            "Debian image: a few minutes)"
        )
    started = {h.name: h for h in bring_up(lab, wanted)}
    hosts = {**existing, **started}
    server = hosts["demo-acme"]
    web = [(hosts[n], stack) for n, _, stack in DEMO_HOSTS if stack is not None]
    inventory = write_inventory(DEMO_DIR / "lab.fleet.yml", inventory_document(lab, server, web))
    echo(f"inventory: {inventory}")
    options = RolloutOptions(inventory=inventory, waves="1,100%", min_days=30)
    outcomes = Rollout(options, console).run()
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
