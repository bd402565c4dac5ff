# Copyright: acmefleet developers
# Apache License 2.0
"""Inventory plugin: a fleet file naming each host's certificate stack."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet
short_description: Hosts and their certificate stacks from an acmefleet fleet file
description:
  - Reads a YAML fleet file (name ending in C(.fleet.yml) or C(.fleet.yaml)) that lists the
    ACME server host(s) and the web hosts with the stack each runs.
  - Creates the groups C(acme_servers), C(acme_databases), C(acme_balancers), one group per
    stack of the collection's stack registry (C(meta/stacks.yml), for example
    C(certbot_apache), C(lego_nginx), C(win_acme_iis), C(win_acme_apache)), C(fleet_linux)
    and C(fleet_windows) (the stacks of each OS family)
    and C(fleet) (every web host), and sets C(ansible_host),
    C(acmefleet_stack), C(acmefleet_names), C(acmefleet_endpoint), C(acmefleet_org) and
    C(acmefleet_email) on each host (host entries override the file's C(defaults)).
version_added: 0.1.0
author: acmefleet developers
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [acmefleet.fleet.fleet]
  defaults:
    description: Values every web host gets unless it sets its own.
    type: dict
    default: {}
  vars:
    description: Variables for the group C(all).
    type: dict
    default: {}
  acme_servers:
    description: ACME server hosts, each with C(name) and C(address).
    type: list
    elements: dict
    default: []
  acme_databases:
    description: >-
      PostgreSQL hosts of the server's replicas (group C(acme_databases), role
      C(acme_database)), each with C(name), C(address) and optional C(vars).
    type: list
    elements: dict
    default: []
  acme_balancers:
    description: >-
      Load balancers in front of the replicas (group C(acme_balancers), role
      C(acme_balancer)), each with C(name), C(address) and optional C(vars).
    type: list
    elements: dict
    default: []
  hosts:
    description: >-
      Web hosts, each with C(name), C(address), C(stack) and C(names) (the certificate's names),
      and optionally C(endpoint), C(org), C(email) and any C(vars).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
# inventory/lab.fleet.yml
plugin: acmefleet.fleet.fleet
defaults:
  org: Example Corp
  endpoint: private
  email: ops@example.com
acme_servers:
  - name: acme1
    address: 10.77.0.10
hosts:
  - name: web1
    address: 10.77.0.11
    stack: certbot_apache
    names: [web1.lab.example]
  - name: web2
    address: 10.77.0.12
    stack: lego_nginx
    names: [web2.lab.example, www.web2.lab.example]
"""

import os
from typing import Any

import yaml
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

# The collection's stack registry (plugins/inventory/ -> the collection root -> meta/).
REGISTRY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "meta",
    "stacks.yml",
)


def read_stacks(path: str = REGISTRY) -> dict[str, str]:
    """Stack name -> OS family (linux, windows), in the registry's order."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    entries = (document or {}).get("acmefleet_stacks")
    if not isinstance(entries, dict) or not entries:
        raise AnsibleParserError(f"{path}: acmefleet_stacks must be a non-empty mapping")
    return {str(name): str(entry["os"]) for name, entry in entries.items()}


STACKS = tuple(read_stacks())
# The ACME server's own hosts: its replicas, their database and their load balancer.
SERVICE_GROUPS = ("acme_servers", "acme_databases", "acme_balancers")
HOST_KEYS = {"name", "address", "stack", "names", "endpoint", "org", "email", "vars"}


class InventoryModule(BaseInventoryPlugin):
    NAME = "acmefleet.fleet.fleet"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith((".fleet.yml", ".fleet.yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        stacks = read_stacks()
        for group in (*SERVICE_GROUPS, "fleet", *stacks):
            self.inventory.add_group(group)
        for family in sorted(set(stacks.values())):
            self.inventory.add_group(f"fleet_{family}")
            self.inventory.add_child("fleet", f"fleet_{family}")
        for stack, family in stacks.items():
            self.inventory.add_child(f"fleet_{family}", stack)
        for name, value in (self.get_option("vars") or {}).items():
            self.inventory.set_variable("all", name, value)
        for group in SERVICE_GROUPS:
            for index, server in enumerate(self.get_option(group)):
                self._add_server(server, group, index)
        defaults = self.get_option("defaults") or {}
        seen: set[str] = set()
        for index, host in enumerate(self.get_option("hosts")):
            self._add_web_host(host, defaults, index, seen)

    def _add_server(self, server: dict[str, Any], group: str, index: int) -> None:
        if not isinstance(server, dict) or "name" not in server:
            raise AnsibleParserError(f"{group}[{index}]: needs at least 'name'")
        self.inventory.add_host(server["name"], group=group)
        if "address" in server:
            self.inventory.set_variable(server["name"], "ansible_host", server["address"])
        for key, value in (server.get("vars") or {}).items():
            self.inventory.set_variable(server["name"], key, value)

    def _add_web_host(
        self, host: Any, defaults: dict[str, Any], index: int, seen: set[str]
    ) -> None:
        where = f"hosts[{index}]"
        if not isinstance(host, dict):
            raise AnsibleParserError(f"{where}: must be a mapping")
        unknown = set(host) - HOST_KEYS
        if unknown:
            raise AnsibleParserError(f"{where}: unknown keys {sorted(unknown)}")
        name, stack, names = host.get("name"), host.get("stack"), host.get("names")
        if not name or not isinstance(name, str):
            raise AnsibleParserError(f"{where}: 'name' is required")
        if name in seen:
            raise AnsibleParserError(f"{where}: host {name!r} is listed twice")
        seen.add(name)
        if stack not in STACKS:
            raise AnsibleParserError(f"{where} ({name}): 'stack' must be one of {list(STACKS)}")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise AnsibleParserError(f"{where} ({name}): 'names' must be a non-empty list")
        self.inventory.add_host(name, group=stack)
        if "address" in host:
            self.inventory.set_variable(name, "ansible_host", host["address"])
        self.inventory.set_variable(name, "acmefleet_stack", stack)
        self.inventory.set_variable(name, "acmefleet_names", names)
        for key in ("endpoint", "org", "email"):
            value = host.get(key, defaults.get(key))
            if value is not None:
                self.inventory.set_variable(name, f"acmefleet_{key}", value)
        for key, value in (host.get("vars") or {}).items():
            self.inventory.set_variable(name, key, value)
