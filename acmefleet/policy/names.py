"""Which organisation domains cover an identifier (private ownership, public pre-validation)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime

from acmefleet.identifiers import Identifier
from acmefleet.models import OrgDomain


def domain_covers(domain: OrgDomain, identifier: Identifier) -> bool:
    """A dns domain covers itself, its subdomains and wildcards under it; a network its IPs."""
    if identifier.type == "ip":
        if domain.kind != "ip":
            return False
        network = ipaddress.ip_network(domain.name, strict=False)
        return ipaddress.ip_address(identifier.value) in network
    if domain.kind != "dns":
        return False
    name = identifier.base_name
    return name == domain.name or name.endswith("." + domain.name)


def covering_domain(
    domains: Iterable[OrgDomain], identifier: Identifier, *, validated_at: datetime | None = None
) -> OrgDomain | None:
    """The domain that covers the identifier; with ``validated_at``, only domains validated then."""
    for domain in domains:
        if validated_at is not None and not domain.is_validated(validated_at):
            continue
        if domain_covers(domain, identifier):
            return domain
    return None
