"""ACME identifiers (RFC 8555 §7.1.3 dns, RFC 8738 ip) and their syntax checks.

Every check here matches the whole string (``fullmatch``): ``re``'s ``$`` also matches
before a trailing newline, so ``evil\\n.example.com`` would pass a ``^…$`` pattern.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

IdentifierType = Literal["dns", "ip"]

# An LDH label (RFC 1035 §2.3.1, RFC 5890 §2.3.1): letters, digits and hyphens, no hyphen
# first or last, 1-63 octets. IDNA A-labels ("xn--…") are LDH labels and pass as they are.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# The characters an IP address may be written with: no IPv6 zone ("%eth0"), no whitespace.
_IP_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
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


def normalise_dns_name(raw: str, *, allow_wildcard: bool = True) -> str:
    """Lower-case and check a DNS name of LDH labels.

    A wildcard is allowed only as one whole leftmost ``*`` label, and only when
    ``allow_wildcard``. Anything but ASCII is refused before lower-casing: ``str.lower``
    would turn the Kelvin sign (U+212A) into ``k``.
    """
    if not isinstance(raw, str) or not raw.isascii():
        raise IdentifierSyntaxError(f"DNS name {raw!r} must be ASCII (IDNA A-labels)")
    name = raw.lower()
    if not name or len(name) > MAX_DNS_NAME_LENGTH:
        raise IdentifierSyntaxError(f"DNS name {raw!r} has an invalid length")
    if name.endswith("."):
        raise IdentifierSyntaxError(f"DNS name {raw!r} must not end with a dot")
    labels = name.split(".")
    if labels[0] == "*":
        if not allow_wildcard:
            raise IdentifierSyntaxError(f"DNS name {raw!r}: a wildcard is not allowed here")
        labels = labels[1:]
    if len(labels) < 2:
        raise IdentifierSyntaxError(f"DNS name {raw!r} needs at least two labels")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise IdentifierSyntaxError(f"DNS name {raw!r} has an invalid label {label!r}")
    if labels[-1].isdigit():
        raise IdentifierSyntaxError(f"DNS name {raw!r} has a numeric top-level label")
    return name


def normalise_ip(raw: str) -> str:
    """An IPv4 or IPv6 address in its compressed form; no IPv6 zone (``%…``) is accepted."""
    if not isinstance(raw, str) or not _IP_CHARS.fullmatch(raw):
        raise IdentifierSyntaxError(f"{raw!r} is not an IP address")
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
