"""The fleet as the orchestrator needs it, read through ``ansible-inventory`` (any source)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acmefleet.fleet import stacks
from acmefleet.fleet.collection import COLLECTION_ROOT, COLLECTIONS_PATH

# The stack names (also the inventory groups), from the registry meta/stacks.yml.
STACKS = stacks.names()


class InventoryError(ValueError):
    """The inventory cannot be used; the message says which host and why."""


@dataclass(frozen=True)
class FleetHost:
    name: str
    address: str
    stack: str
    names: tuple[str, ...]
    endpoint: str
    org: str
    port: int = 22
    user: str = "root"
    tls_port: int = 443
    variables: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def renew_check_name(self) -> str:
        """What roles/renew_check names this host's units after (its stack, first name)."""
        return f"{self.stack.replace('_', '-')}-{self.names[0].replace('*', '_')}"

    @property
    def has_renew_check(self) -> bool:
        """Whether the stack role installs the renew-check (acmefleet_renew_check)."""
        wanted = self.variables.get("acmefleet_renew_check", True)
        if isinstance(wanted, str):
            return wanted.strip().lower() not in ("false", "no", "off", "0")
        return bool(wanted)

    @property
    def is_windows(self) -> bool:
        registered = stacks.get(self.stack)
        return registered is not None and registered.is_windows


@dataclass(frozen=True)
class Fleet:
    hosts: tuple[FleetHost, ...]
    servers: tuple[str, ...]
    all_vars: dict[str, Any]
    hostvars: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The server's database and load balancer hosts (groups acme_databases, acme_balancers):
    # deployed with the server, by the same playbook.
    server_support: tuple[str, ...] = ()

    def by_name(self) -> dict[str, FleetHost]:
        return {h.name: h for h in self.hosts}


# ansible-core imports cryptography's DSA module, which warns on every ansible command
# (cryptography 51 here); the line only buries real errors in logs and failure texts.
QUIET_DSA_WARNING = "ignore:DSA is deprecated"


def collection_environment() -> dict[str, str]:
    """Ansible settings that make this collection (checkout or installed) usable anywhere."""
    warnings = [os.environ.get("PYTHONWARNINGS", ""), QUIET_DSA_WARNING]
    return {
        "PYTHONWARNINGS": ",".join(w for w in warnings if w),
        "ANSIBLE_CONFIG": str(COLLECTION_ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
        "ANSIBLE_ROLES_PATH": str(COLLECTION_ROOT / "roles"),
        "ANSIBLE_INVENTORY_ENABLED": "acmefleet.fleet.fleet,ansible.builtin.yaml,"
        "ansible.builtin.ini,ansible.builtin.host_list",
    }


def _ansible_inventory() -> str:
    local = Path(sys.executable).with_name("ansible-inventory")
    return str(local) if local.exists() else "ansible-inventory"


def read_inventory(source: Path, limit: str | None = None) -> dict[str, Any]:
    if not source.exists():
        raise InventoryError(f"inventory {source} does not exist")
    command = [_ansible_inventory(), "-i", str(source), "--list"]
    if limit:
        command += ["--limit", limit]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **collection_environment()},
    )
    lines = result.stderr.splitlines()
    ours = [
        ln.split(" plugin: ", 1)[-1]
        for ln in lines
        if "Failed to parse inventory with" in ln and "acmefleet" in ln
    ]
    problems = [ln for ln in lines if "[WARNING]" in ln or "ERROR" in ln]
    if (
        result.returncode != 0
        or ours
        or any("Unable to parse" in ln or "No inventory was parsed" in ln for ln in problems)
    ):
        detail = ours[0] if ours else (problems[-1] if problems else result.stderr.strip()[-400:])
        raise InventoryError(f"cannot read inventory {source}: {detail}")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _host(name: str, hostvars: dict[str, Any], stack: str) -> FleetHost:
    names = hostvars.get("acmefleet_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InventoryError(f"host {name}: acmefleet_names must be a non-empty list of names")
    for key in ("acmefleet_endpoint", "acmefleet_org"):
        if not isinstance(hostvars.get(key), str):
            raise InventoryError(f"host {name}: {key} is not set")
    return FleetHost(
        name=name,
        address=str(hostvars.get("ansible_host", name)),
        stack=stack,
        names=tuple(names),
        endpoint=hostvars["acmefleet_endpoint"],
        org=hostvars["acmefleet_org"],
        port=int(hostvars.get("ansible_port", 22)),
        user=str(hostvars.get("ansible_user", "root")),
        tls_port=int(hostvars.get("acmefleet_tls_port", 443)),
        variables=hostvars,
    )


def load_fleet(source: Path, limit: str | None = None) -> Fleet:
    data = read_inventory(source, limit)
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    stack_of: dict[str, str] = {}
    for stack in STACKS:
        for name in _group_hosts(data, stack):
            if name in stack_of and stack_of[name] != stack:
                raise InventoryError(f"host {name} is in two stacks: {stack_of[name]}, {stack}")
            stack_of[name] = stack
    for name, variables in hostvars.items():
        declared = variables.get("acmefleet_stack")
        if declared is not None and declared not in STACKS:
            raise InventoryError(f"host {name}: unknown stack {declared!r}")
        if declared is not None and stack_of.get(name, declared) != declared:
            raise InventoryError(
                f"host {name}: acmefleet_stack {declared} != group {stack_of[name]}"
            )
        if declared is not None:
            stack_of[name] = declared
    hosts = tuple(_host(n, hostvars.get(n, {}), s) for n, s in sorted(stack_of.items()))
    servers = tuple(sorted(_group_hosts(data, "acme_servers")))
    support = tuple(
        sorted(_group_hosts(data, "acme_databases") | _group_hosts(data, "acme_balancers"))
    )
    all_vars = data.get("all", {}).get("vars", {})
    if not hosts:
        raise InventoryError(
            f"inventory {source} has no host in a stack group ({', '.join(STACKS)})"
        )
    return Fleet(hosts, servers, all_vars, hostvars, support)


def _group_hosts(data: dict[str, Any], group: str) -> set[str]:
    found: set[str] = set()
    entry = data.get(group, {})
    found.update(entry.get("hosts", []))
    for child in entry.get("children", []):
        found |= _group_hosts(data, child)
    return found
