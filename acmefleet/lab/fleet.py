"""A lab fleet: hosts brought up together and the fleet inventory that describes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from acmefleet.lab.hosts import Lab, LabHost
from acmefleet.lab.rootfs import LAB_USER

LAB_DOMAIN = "lab.example"
LAB_ORG = "lab"
ACME_PORT, PKI_PORT = 8555, 8556


def host_names(host: LabHost) -> list[str]:
    return [f"{host.name}.{LAB_DOMAIN}"]


def _login(host: LabHost, users: Mapping[str, str]) -> dict[str, str]:
    """Per-host vars: who Ansible logs in as, when not the lab's sudo user (root, say)."""
    user = users.get(host.name, LAB_USER)
    return {} if user == LAB_USER else {"ansible_user": user}


def connection_vars(lab: Lab) -> dict[str, str]:
    """How Ansible reaches the lab's hosts: as the lab's sudo user, with the lab's key and
    known_hosts (host keys checked), one SSH connection reused per host."""
    return {
        "ansible_user": LAB_USER,
        "ansible_ssh_private_key_file": str(lab.ssh_key),
        "ansible_ssh_common_args": (
            f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes "
            "-o ControlMaster=auto -o ControlPersist=120s"
        ),
    }


def inventory_document(
    lab: Lab,
    server: LabHost,
    web: Sequence[tuple[LabHost, str]],
    endpoint: str = "private",
    users: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """A fleet file for the inventory plugin acmefleet.fleet.fleet.

    Hosts are reached as the lab's sudo user (the plays become root), as most sites do;
    ``users`` names the hosts reached as someone else (``root``).
    """
    users = users or {}
    validation_hosts = {name: h.address for h, _ in web for name in host_names(h)}
    return {
        "plugin": "acmefleet.fleet.fleet",
        "vars": connection_vars(lab),
        "defaults": {"org": LAB_ORG, "endpoint": endpoint, "email": f"ops@{LAB_DOMAIN}"},
        "acme_servers": [
            {
                "name": server.name,
                "address": server.address,
                "vars": {
                    **_login(server, users),
                    "acme_server_base_url": f"https://{server.address}:{ACME_PORT}",
                    "acme_server_pki_base_url": f"http://pki.{LAB_DOMAIN}:{PKI_PORT}",
                    "acme_server_validation": {
                        "http01_port": 80,
                        "allow_private_addresses": True,
                        "hosts": validation_hosts,
                        # The lab hosts have no DNS at all (static answers above): no CAA.
                        "check_caa": False,
                    },
                    "acme_server_organizations": [{"name": LAB_ORG, "domains": [LAB_DOMAIN]}],
                },
            }
        ],
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "stack": stack,
                "names": host_names(h),
                **({"vars": _login(h, users)} if _login(h, users) else {}),
            }
            for h, stack in web
        ],
    }


def write_inventory(path: Path, document: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by acmefleet's lab; hosts are disposable.\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    return path


def bring_up(
    lab: Lab, names: Sequence[tuple[str, int] | tuple[str, int, str]], parallel: int = 4
) -> list[LabHost]:
    """Several hosts at once (the bridge is made first, so starts do not race on it).

    Each item is (name, index) or (name, index, suite).
    """
    if not names:
        return []
    first = lab.up(*names[0])
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        rest = list(pool.map(lambda item: lab.up(*item), names[1:]))
    return [first, *rest]
