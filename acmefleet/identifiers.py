"""ACME identifiers (RFC 8555 §7.1.3 dns, RFC 8738 ip) and their syntax checks."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

IdentifierType = Literal["dns", "ip"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_DNS_NAME_LENGTH = 253


class IdentifierSyntaxError(ValueError):
    """An identifier that is not a valid name or address."""


@dataclass(frozen=True, order=True)
class Identifier:
    type: IdentifierType
    value: str

    @property
    def is_wildcard(self) -> bool:
        return self.type == "dns" and self.value.startswith("*.")

    @property
    def base_name(self) -> str:
        """The name without a leading ``*.`` (what an authorization is for)."""
        return self.value[2:] if self.is_wildcard else self.value

    def as_wire(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


def normalise_dns_name(raw: str) -> str:
    """Lower-case and check a DNS name (wildcard allowed only as the whole leftmost label)."""
    name = raw.lower()
    if not name or len(name) > MAX_DNS_NAME_LENGTH:
        raise IdentifierSyntaxError(f"DNS name {raw!r} has an invalid length")
    if name.endswith("."):
        raise IdentifierSyntaxError(f"DNS name {raw!r} must not end with a dot")
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    if len(labels) < 2:
        raise IdentifierSyntaxError(f"DNS name {raw!r} needs at least two labels")
    for label in labels:
        if not _LABEL.match(label):
            raise IdentifierSyntaxError(f"DNS name {raw!r} has an invalid label {label!r}")
    if labels[-1].isdigit():
        raise IdentifierSyntaxError(f"DNS name {raw!r} has a numeric top-level label")
    return name


def normalise_ip(raw: str) -> str:
    try:
        return ipaddress.ip_address(raw).compressed
    except ValueError as exc:
        raise IdentifierSyntaxError(f"{raw!r} is not an IP address") from exc


def parse_identifier(type_: str, value: str) -> Identifier:
    if type_ == "dns":
        return Identifier("dns", normalise_dns_name(value))
    if type_ == "ip":
        return Identifier("ip", normalise_ip(value))
    raise IdentifierSyntaxError(f"unknown identifier type {type_!r}")
