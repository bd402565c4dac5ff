"""The package mirror the hosts may reach, read from this machine's apt sources."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

SOURCES_DIR = Path("/etc/apt/sources.list.d")
SOURCES_LIST = Path("/etc/apt/sources.list")


def mirror_urls() -> list[str]:
    """Every http(s) URI of the machine's Debian sources, in order, without duplicates."""
    found: list[str] = []
    for path in sorted(SOURCES_DIR.glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:"):
                found.extend(line.split()[1:])
    if SOURCES_LIST.exists():
        for line in SOURCES_LIST.read_text().splitlines():
            match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if match:
                found.append(match.group(1))
    return list(dict.fromkeys(u for u in found if u.startswith(("http://", "https://"))))


def mirror_hosts() -> list[str]:
    names = (urlsplit(u).hostname for u in mirror_urls())
    return list(dict.fromkeys(n for n in names if n))


def resolve_ipv4(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def hosts_lines() -> list[str]:
    """``/etc/hosts`` lines mapping each mirror name (the hosts have no DNS)."""
    lines = []
    for host in mirror_hosts():
        addresses = resolve_ipv4(host)
        if addresses:
            lines.append(f"{addresses[0]}\t{host}")
    return lines


def mirror_addresses() -> list[str]:
    return sorted({a for host in mirror_hosts() for a in resolve_ipv4(host)})
