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


def check_reachable(address: IPAddress, *, allow_private: bool) -> None:
    """Validation must not be a way to probe the server's own networks."""
    if allow_private:
        return
    if not address.is_global:
        raise AcmeError(
            ProblemType.CONNECTION,
            f"{address} is not a public address; this server does not validate there",
        )
