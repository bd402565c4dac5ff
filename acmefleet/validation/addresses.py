"""Resolve a name for validation, and refuse addresses validation must never reach."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping

from acmefleet.errors import AcmeError, ProblemType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def static_answer(hosts: Mapping[str, str], name: str) -> str | None:
    """The configured address for a name: exact, then the longest suffix, then ``*``."""
    if name in hosts:
        return hosts[name]
    best: str | None = None
    for suffix in hosts:
        if (
            suffix != "*"
            and name.endswith("." + suffix)
            and (best is None or len(suffix) > len(best))
        ):
            best = suffix
    if best is not None:
        return hosts[best]
    return hosts.get("*")


async def resolve(name: str, hosts: Mapping[str, str]) -> list[IPAddress]:
    configured = static_answer(hosts, name)
    if configured is not None:
        return [ipaddress.ip_address(configured)]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise AcmeError(ProblemType.DNS, f"no address found for {name}") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise AcmeError(ProblemType.DNS, f"no address found for {name}")
    return addresses


# IPv6 forms that carry an IPv4 address: the host, or a translator or relay on the way,
# reaches that IPv4 address, so it must be public too.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1 (deprecated)
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
# RFC 8215: local-use NAT64. Where the IPv4 sits depends on the prefix length the operator
# chose (/48 to /96, RFC 6052 §2.2), and the block is not globally reachable: never validated.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_ISATAP_IID = 0x0000_5EFE  # RFC 5214 §6.1: 00-00-5E-FE, or 02-00-5E-FE with the u bit set
_ISATAP_MASK = 0xFCFF_FFFF  # the u/l and g bits of the first octet may be set


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address ``address`` embeds (IPv4-mapped/-compatible/-translated, NAT64,
    6to4, Teredo server and client, ISATAP); empty for an ordinary IPv6 address."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED or address in _NAT64:
        found.append(low32)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if (int(address) >> 32) & _ISATAP_MASK == _ISATAP_IID:
        found.append(low32)
    return found


def is_public(address: IPAddress) -> bool:
    """Globally reachable, and so is every IPv4 address it embeds."""
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        return all(ipv4.is_global for ipv4 in embedded_ipv4(address))
    return True


def check_reachable(address: IPAddress, *, allow_private: bool) -> None:
    """Validation must not be a way to probe the server's own networks."""
    if allow_private:
        return
    if not is_public(address):
        raise AcmeError(
            ProblemType.CONNECTION,
            f"{address} is not a public address; this server does not validate there",
        )
