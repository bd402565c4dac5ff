"""Everything a request handler may use, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from acmefleet.acme.nonces import NonceService
from acmefleet.acme.urls import EndpointUrls
from acmefleet.ca.hierarchy import Authority
from acmefleet.ca.issuer import Issuer
from acmefleet.ca.profiles import LeafProfile
from acmefleet.clock import Clock
from acmefleet.config import EndpointConfig, ServerConfig
from acmefleet.jose.keys import KeyCache
from acmefleet.models import Account
from acmefleet.policy.caa import CaaContext
from acmefleet.policy.orders import Lifetimes
from acmefleet.policy.relay import RelayTo
from acmefleet.policy.relay_queue import RelayQueue
from acmefleet.policy.reuse import Reuse
from acmefleet.policy.validation_queue import ValidationQueue
from acmefleet.store.crls import PublishedCrl
from acmefleet.store.engine import Database
from acmefleet.tasks import BackgroundTasks
from acmefleet.validation.base import ChallengeValidator
from acmefleet.validation.caa import CaaCheck, CaaChecker
from acmefleet.validation.dnsquery import DnsSettings


@dataclass
class AcmeContext:
    config: ServerConfig
    db: Database
    clock: Clock
    nonces: NonceService
    authorities: dict[str, Authority]
    issuers: dict[str, Issuer]
    profiles: dict[str, LeafProfile]
    validators: dict[str, ChallengeValidator]
    # This process's share of the validation queue (the queue itself is in the database).
    queue: ValidationQueue
    # Per endpoint (by challenge type): a public endpoint with remote perspectives gets
    # corroborating validators (validation/mpic.py). An endpoint missing here uses
    # ``validators``.
    endpoint_validators: dict[str, dict[str, ChallengeValidator]] = field(default_factory=dict)
    keys: KeyCache = field(default_factory=KeyCache)
    tasks: BackgroundTasks = field(default_factory=BackgroundTasks)
    _urls: dict[str, EndpointUrls] = field(default_factory=dict)
    # The CRL this process served last per trust level: served while the database is away.
    last_crls: dict[str, PublishedCrl] = field(default_factory=dict)
    # Per trust level: no new CRL is signed before then (the database refused the last one).
    crl_hold_until: dict[str, datetime] = field(default_factory=dict)
    # CAA on public endpoints: the validators' resolvers and deadline unless given.
    caa_checker: CaaCheck | None = None
    # Per endpoint: corroborating CAA checkers where the endpoint has remote perspectives
    # (validation/mpic.py); an endpoint missing here uses ``caa_checker``.
    endpoint_caa_checkers: dict[str, CaaCheck] = field(default_factory=dict)
    # This process's share of the relay to upstream CAs (endpoints with ``upstream``).
    relay: RelayQueue | None = None

    def __post_init__(self) -> None:
        if self.caa_checker is None:
            validation = self.config.validation
            self.caa_checker = CaaChecker(DnsSettings(validation.dns_resolvers, validation.timeout))

    def endpoint(self, name: str) -> EndpointConfig | None:
        return self.config.endpoints.get(name)

    def relay_to(self, endpoint: EndpointConfig) -> RelayTo | None:
        """Where ``endpoint``'s orders are relayed at finalize (None: signed here)."""
        if endpoint.upstream is None:
            return None
        return RelayTo(endpoint.upstream, self.config.upstreams[endpoint.upstream].retry_for)

    def validators_for(self, endpoint: str) -> dict[str, ChallengeValidator]:
        return self.endpoint_validators.get(endpoint, self.validators)

    def urls(self, endpoint: str) -> EndpointUrls:
        found = self._urls.get(endpoint)
        if found is None:
            found = self._urls[endpoint] = EndpointUrls(self.config.base_url, endpoint)
        return found

    def account_url(self, account: Account) -> str:
        return self.urls(account.endpoint).account(account.id)

    @property
    def caa(self) -> CaaContext | None:
        """What policy needs to check CAA (public endpoints); None where it is turned off
        (``validation.check_caa = false``: a closed network without DNS)."""
        assert self.caa_checker is not None
        if not self.config.validation.check_caa:
            return None
        return CaaContext(
            self.caa_checker, self.config.endpoints, self.account_url, self.endpoint_caa_checkers
        )

    @property
    def lifetimes(self) -> Lifetimes:
        return Lifetimes(order=self.config.order_lifetime, authorization=self.config.authz_lifetime)

    @property
    def reuse(self) -> Reuse:
        validation = self.config.validation
        return Reuse(window=validation.authorization_reuse, scope=validation.reuse_scope)
