"""The lab network: a bridge, one namespace per host, and an egress guard.

Hosts live on 10.77.0.0/24 behind bridge ``br-afleet`` (the controller is 10.77.0.1).
nftables lets them reach each other, the controller, and the package mirror on TCP 80
(masqueraded); everything else they send is dropped.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from acmefleet.lab.mirror import mirror_addresses
from acmefleet.lab.system import LabError, run

BRIDGE = "br-afleet"
SUBNET = ipaddress.ip_network("10.77.0.0/24")
GATEWAY = "10.77.0.1"
GUARD_TABLE = "acmefleet_lab"
FIRST_INDEX, LAST_INDEX = 2, 254


def host_address(index: int) -> str:
    if not FIRST_INDEX <= index <= LAST_INDEX:
        raise LabError(f"host index must be {FIRST_INDEX}-{LAST_INDEX}, not {index}")
    return str(SUBNET.network_address + index)


def namespace(name: str) -> str:
    return f"afl-{name}"


def host_veth(name: str) -> str:
    veth = f"vaf-{name}"
    if len(veth) > 15:
        raise LabError(f"host name {name!r} is too long (at most 11 characters)")
    return veth


def _link_exists(name: str) -> bool:
    return run(["ip", "link", "show", name], check=False).returncode == 0


def guard_rules(mirrors: list[str]) -> str:
    if not mirrors:
        raise LabError("no package mirror address found in the apt sources")
    elements = ", ".join(mirrors)
    return f"""table inet {GUARD_TABLE}
delete table inet {GUARD_TABLE}
table inet {GUARD_TABLE} {{
  set mirror {{ type ipv4_addr; elements = {{ {elements} }} }}
  chain forward {{
    type filter hook forward priority -10; policy accept;
    ip saddr {SUBNET} ip daddr @mirror tcp dport 80 accept
    ip saddr {SUBNET} ip daddr {SUBNET} accept
    ip saddr {SUBNET} counter drop
    iifname "vaf-*" meta nfproto ipv6 counter drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat - 5; policy accept;
    ip saddr {SUBNET} ip daddr @mirror tcp dport 80 masquerade
  }}
}}
"""


def bridge_up() -> None:
    """Create the bridge and the egress guard (idempotent)."""
    if not _link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{GATEWAY}/{SUBNET.prefixlen}", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
    run(["nft", "-f", "-"], input_text=guard_rules(mirror_addresses()))
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def bridge_down() -> None:
    if _link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE], check=False)
    run(["nft", "delete", "table", "inet", GUARD_TABLE], check=False)


def add_host(name: str, index: int) -> str:
    """A namespace with eth0 on the bridge; a fixed MAC per address avoids stale ARP."""
    ns, veth, address = namespace(name), host_veth(name), host_address(index)
    run(["ip", "netns", "add", ns])
    mac = f"02:4c:41:42:00:{index:02x}"
    run(
        [
            "ip",
            "link",
            "add",
            veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
            "address",
            mac,
        ]
    )
    run(["ip", "neigh", "flush", "to", address, "dev", BRIDGE], check=False)
    run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "route", "add", "default", "via", GATEWAY])
    return address


def remove_host(name: str) -> None:
    run(["ip", "link", "del", host_veth(name)], check=False)
    run(["ip", "netns", "del", namespace(name)], check=False)
