"""Settings the orchestrator reads from the inventory: controller paths, SSH options."""

from __future__ import annotations

import shlex
from pathlib import Path

from acmefleet.fleet.inventory import Fleet, FleetHost, InventoryError


def inventory_path_var(fleet: Fleet, inventory: Path, name: str) -> Path | None:
    """A controller path from the inventory's ``all`` vars; relative to the inventory.

    Inventory plugins (acmefleet.fleet.fleet among them) set ``all``'s variables on each
    host: ``ansible-inventory --list`` then shows them only in the hosts' variables, so a
    value **every** host has, the same, counts as the inventory's too (one host's own
    setting, or a group's, is that host's or group's business, not the fleet's)."""
    value = fleet.all_vars.get(name)
    if not value and fleet.hosts:
        seen = {str(h.variables.get(name) or "") for h in fleet.hosts}
        value = seen.pop() if len(seen) == 1 else None
    if not value:
        return None
    if "{{" in str(value):
        raise InventoryError(f"inventory variable {name} must be a plain path, not a template")
    path = Path(str(value))
    return path if path.is_absolute() else inventory.resolve().parent / path


def ssh_options(host: FleetHost) -> list[str]:
    """The host's own SSH settings, then strict host key checking and batch mode."""
    options = shlex.split(str(host.variables.get("ansible_ssh_common_args", "")))
    key = host.variables.get("ansible_ssh_private_key_file")
    if key:
        options += ["-i", str(key)]
    return [
        *options,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=5",
    ]
