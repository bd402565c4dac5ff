"""Which organisation domains cover an identifier: ownership, and console validation.

Two different questions, kept apart on purpose:

* **ownership** (private endpoints, delegations): an organisation's domain covers itself, every
  name below it and wildcards under it; no validation is involved;
* **validation** (public endpoints, the "validated in the console, so no challenge" shortcut):
  a validation covers what its scope says. ``exact`` (an http-01 check, CA/B BR 3.2.2.4.18/19)
  proves control of that one FQDN: never a wildcard, never a name below it (BR ballot SC45).
  ``subdomains`` covers the name, the names below it and wildcards under it; only two methods
  may carry it: the console's DNS check (``dns``, a Random Value in a TXT record, BR 3.2.2.4.7
  and 3.2.2.6), which is the one *check* that proves a subtree, and ``manual``, an
  administrator who vouched for the whole subtree (kept as given: the migration 0006 note).
  Any other method counts as ``exact`` whatever its stored scope says, so a row written wrong
  can never widen an http-01 check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime

from acmefleet.identifiers import Identifier
from acmefleet.models import OrgDomain


def domain_covers(domain: OrgDomain, identifier: Identifier) -> bool:
    """Ownership: a dns domain covers itself, its subdomains and wildcards; a network its IPs."""
    if identifier.type == "ip":
        if domain.kind != "ip":
            return False
        network = ipaddress.ip_network(domain.name, strict=False)
        return ipaddress.ip_address(identifier.value) in network
    if domain.kind != "dns":
        return False
    name = identifier.base_name
    return name == domain.name or name.endswith("." + domain.name)


def covering_domain(domains: Iterable[OrgDomain], identifier: Identifier) -> OrgDomain | None:
    """The domain the identifier belongs to (ownership; validation plays no part)."""
    for domain in domains:
        if domain_covers(domain, identifier):
            return domain
    return None


# The validation methods whose scope may be "subdomains" (see the module's docstring).
SUBTREE_METHODS = frozenset({"dns", "manual"})


def covers_subtree(domain: OrgDomain) -> bool:
    """The domain's validation (valid or not) is of a subtree: its names below and wildcards."""
    return domain.validation_scope == "subdomains" and domain.validation_method in SUBTREE_METHODS


def validation_covers(domain: OrgDomain, identifier: Identifier, now: datetime) -> bool:
    """The domain's validation, still valid at ``now``, proves control of the identifier.

    Only dns names: a validation never spares an IP address its challenge. A scope that is
    missing or unknown, or ``subdomains`` on a method that cannot prove a subtree, counts as
    ``exact``, the narrower one.
    """
    if not domain.is_validated(now) or domain.kind != "dns" or identifier.type != "dns":
        return False
    if covers_subtree(domain):
        return domain_covers(domain, identifier)
    return not identifier.is_wildcard and identifier.value == domain.name


def validated_domain(
    domains: Iterable[OrgDomain], identifier: Identifier, now: datetime
) -> OrgDomain | None:
    """The domain whose validation (at ``now``, within its scope) covers the identifier."""
    for domain in domains:
        if validation_covers(domain, identifier, now):
            return domain
    return None
