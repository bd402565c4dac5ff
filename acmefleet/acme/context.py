"""Everything a request handler may use, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from acmefleet.acme.nonces import NonceService
from acmefleet.acme.urls import EndpointUrls
from acmefleet.ca.crl_cache import CrlCache
from acmefleet.ca.hierarchy import Authority
from acmefleet.ca.issuer import Issuer
from acmefleet.ca.profiles import LeafProfile
from acmefleet.clock import Clock
from acmefleet.config import EndpointConfig, ServerConfig
from acmefleet.jose.keys import KeyCache
from acmefleet.policy.orders import Lifetimes
from acmefleet.policy.reuse import Reuse
from acmefleet.policy.validation_queue import ValidationQueue
from acmefleet.store.engine import Database
from acmefleet.tasks import BackgroundTasks
from acmefleet.validation.base import ChallengeValidator


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
    keys: KeyCache = field(default_factory=KeyCache)
    tasks: BackgroundTasks = field(default_factory=BackgroundTasks)
    _urls: dict[str, EndpointUrls] = field(default_factory=dict)
    crls: CrlCache = field(default_factory=CrlCache)  # shared with the console

    def endpoint(self, name: str) -> EndpointConfig | None:
        return self.config.endpoints.get(name)

    def urls(self, endpoint: str) -> EndpointUrls:
        found = self._urls.get(endpoint)
        if found is None:
            found = self._urls[endpoint] = EndpointUrls(self.config.base_url, endpoint)
        return found

    @property
    def lifetimes(self) -> Lifetimes:
        return Lifetimes(order=self.config.order_lifetime, authorization=self.config.authz_lifetime)

    @property
    def reuse(self) -> Reuse:
        validation = self.config.validation
        return Reuse(window=validation.authorization_reuse, scope=validation.reuse_scope)
