"""The checks an agent runs, by the ``kind`` a request names: one registry entry each.

Every entry builds, from the agent's own ``[validation]`` settings, an object with the
``ChallengeValidator`` shape (``deadline`` and ``validate(identifier, token,
key_authorization)``): the very classes the ACME server validates with, so a perspective
checks exactly what the primary does. A new challenge kind is one more entry.

The CAA check (kind ``caa``, BR 3.2.2.9) takes other arguments (``CaaRequest``): its entry is
``build_caa``, ``validation/caa.py``'s ``CaaChecker`` on the agent's own resolvers and
deadline, the very check the server makes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from acmefleet.config import ValidationConfig
from acmefleet.validation.base import ChallengeValidator
from acmefleet.validation.caa import CaaCheck, CaaChecker
from acmefleet.validation.dns01 import Dns01Validator
from acmefleet.validation.dnsquery import DnsSettings
from acmefleet.validation.http01 import Http01Validator
from acmefleet.validation.perspective import CAA_KIND, CaaRequest
from acmefleet.validation.tlsalpn01 import TlsAlpn01Validator

CheckFactory = Callable[[ValidationConfig], ChallengeValidator]


def _http01(config: ValidationConfig) -> ChallengeValidator:
    return Http01Validator(
        port=config.http01_port,
        timeout=config.timeout,
        allow_private=config.allow_private_addresses,
        hosts=config.hosts,
    )


def _dns01(config: ValidationConfig) -> ChallengeValidator:
    return Dns01Validator(resolvers=config.dns_resolvers, timeout=config.timeout)


def _tlsalpn01(config: ValidationConfig) -> ChallengeValidator:
    return TlsAlpn01Validator(
        port=config.tls_alpn01_port,
        timeout=config.timeout,
        allow_private=config.allow_private_addresses,
        hosts=config.hosts,
    )


CHECKS: dict[str, CheckFactory] = {
    "http-01": _http01,
    "dns-01": _dns01,
    "tls-alpn-01": _tlsalpn01,
}


def build_checks(
    config: ValidationConfig, registry: Mapping[str, CheckFactory] = CHECKS
) -> dict[str, ChallengeValidator]:
    """One checker per kind, built once (each validation still asks the network afresh)."""
    return {kind: factory(config) for kind, factory in registry.items()}


@dataclass(frozen=True)
class CaaAgentCheck:
    """The agent's CAA check: the server's ``CaaCheck`` with its deadline."""

    checker: CaaCheck
    deadline: timedelta
    kind: str = CAA_KIND

    async def run(self, request: CaaRequest) -> None:
        await self.checker.check(
            request.name,
            wildcard=request.wildcard,
            account_uri=request.account_uri,
            method=request.method,
            issuer_domains=request.issuer_domains,
        )


def build_caa(config: ValidationConfig) -> CaaAgentCheck:
    """CAA from the agent's own resolvers, within its ``timeout`` (as the server's)."""
    return CaaAgentCheck(
        CaaChecker(DnsSettings(config.dns_resolvers, config.timeout)), config.timeout
    )
