"""Wire a running server together from a data directory."""

from __future__ import annotations

import ssl
from datetime import timedelta
from pathlib import Path

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.nonces import NonceService, load_or_create_nonce_key
from acmefleet.ca.hierarchy import Authority, load_authority
from acmefleet.ca.issuer import EmbeddedIssuer, Issuer
from acmefleet.ca.profiles import DEFAULT_PROFILES, LeafProfile
from acmefleet.clock import Clock, SystemClock
from acmefleet.config import ConfigError, PerspectiveSet, ServerConfig, load_config
from acmefleet.console.context import ConsoleContext
from acmefleet.policy.relay_queue import RelayQueue, RelayTarget
from acmefleet.policy.validation_queue import QueueSettings, ValidationQueue
from acmefleet.server.datadir import read_passphrase, require_initialised
from acmefleet.server.upstream import (
    account_binder,
    account_forgetter,
    dns_publisher,
    open_client,
)
from acmefleet.store.engine import Database
from acmefleet.validation.base import ChallengeValidator
from acmefleet.validation.caa import CaaCheck, CaaChecker
from acmefleet.validation.dns01 import Dns01Validator
from acmefleet.validation.dnsquery import DnsSettings
from acmefleet.validation.http01 import Http01Validator
from acmefleet.validation.mpic import (
    CorroboratingCaaChecker,
    CorroboratingValidator,
    RemotePerspective,
    tls_context,
)
from acmefleet.validation.tlsalpn01 import TlsAlpn01Validator


def build_profiles(config: ServerConfig) -> dict[str, LeafProfile]:
    profiles = dict(DEFAULT_PROFILES)
    for name, raw in config.profiles.items():
        base = profiles.get(name) or DEFAULT_PROFILES.get(str(raw.get("kind")))
        if base is None:
            raise ConfigError(f"profiles.{name}: 'kind' must be one of {list(DEFAULT_PROFILES)}")
        try:
            profiles[name] = LeafProfile(
                name=name,
                description=str(raw.get("description", base.description)),
                kind=base.kind,
                validity=timedelta(days=float(raw.get("validity_days", base.validity.days))),
                max_validity=base.max_validity,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    for endpoint in config.endpoints.values():
        for name in endpoint.profiles:
            if name not in profiles:
                raise ConfigError(f"endpoint {endpoint.name}: unknown profile {name!r}")
            if profiles[name].kind == "public-dv" and endpoint.type != "public":
                raise ConfigError(f"endpoint {endpoint.name}: public-dv needs a public endpoint")
    return profiles


def build_validators(config: ServerConfig) -> dict[str, ChallengeValidator]:
    validation = config.validation
    return {
        "http-01": Http01Validator(
            port=validation.http01_port,
            timeout=validation.timeout,
            allow_private=validation.allow_private_addresses,
            hosts=validation.hosts,
        ),
        "dns-01": Dns01Validator(resolvers=validation.dns_resolvers, timeout=validation.timeout),
        "tls-alpn-01": TlsAlpn01Validator(
            port=validation.tls_alpn01_port,
            timeout=validation.timeout,
            allow_private=validation.allow_private_addresses,
            hosts=validation.hosts,
        ),
    }


def _remote_perspectives(found: PerspectiveSet, root: Path) -> list[RemotePerspective]:
    """The agents of one [perspectives.<name>] set, with one mutual-TLS context for all."""
    where = f"perspectives.{found.name}"
    try:
        context = tls_context(
            ssl.Purpose.SERVER_AUTH,
            ca_file=root / found.ca_file,
            cert_file=root / found.client_cert_file,
            key_file=root / found.client_key_file,
        )
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return [RemotePerspective(a.name, a.url, a.identity, context, a.region) for a in found.agents]


def endpoint_perspectives(config: ServerConfig, root: Path) -> dict[str, list[RemotePerspective]]:
    """The remote perspectives of each endpoint that names a set (one TLS context a set)."""
    remote: dict[str, list[RemotePerspective]] = {}
    chosen: dict[str, list[RemotePerspective]] = {}
    for endpoint in config.endpoints.values():
        if endpoint.perspectives is None:
            continue
        if endpoint.perspectives not in remote:
            found = config.perspectives[endpoint.perspectives]
            remote[endpoint.perspectives] = _remote_perspectives(found, root)
        chosen[endpoint.name] = remote[endpoint.perspectives]
    return chosen


def build_endpoint_validators(
    config: ServerConfig,
    local: dict[str, ChallengeValidator],
    root: Path,
    perspectives: dict[str, list[RemotePerspective]] | None = None,
) -> dict[str, dict[str, ChallengeValidator]]:
    """Each endpoint's validators by challenge type: the server's own (``local``), wrapped
    in a ``CorroboratingValidator`` where the endpoint names a perspective set (BR 3.2.2.9)."""
    if perspectives is None:
        perspectives = endpoint_perspectives(config, root)
    chosen: dict[str, dict[str, ChallengeValidator]] = {}
    for endpoint in config.endpoints.values():
        agents = perspectives.get(endpoint.name)
        if agents is None:
            chosen[endpoint.name] = local
            continue
        chosen[endpoint.name] = {
            kind: CorroboratingValidator(validator, agents) for kind, validator in local.items()
        }
    return chosen


def build_endpoint_caa_checkers(
    config: ServerConfig, perspectives: dict[str, list[RemotePerspective]]
) -> dict[str, CaaCheck]:
    """A ``CorroboratingCaaChecker`` for each endpoint with remote perspectives (BR 3.2.2.9:
    CAA is corroborated too); the others use the context's own ``CaaChecker``."""
    validation = config.validation
    primary = CaaChecker(DnsSettings(validation.dns_resolvers, validation.timeout))
    return {
        name: CorroboratingCaaChecker(primary, agents, deadline=validation.timeout)
        for name, agents in perspectives.items()
    }


def build_relay(config: ServerConfig, root: Path, db: Database, clock: Clock) -> RelayQueue | None:
    """The relay to the configured upstream CAs (None: none is configured).
    Each upstream's account key is made now if missing; its account is bound on first use."""
    # Every configured upstream, not only those an endpoint names now: certificates an
    # endpoint took from one before it moved to another are still revoked there.
    if not config.upstreams:
        return None
    targets: dict[str, RelayTarget] = {}
    for name in sorted(config.upstreams):
        upstream = config.upstreams[name]
        client = open_client(root, upstream, create_key=True)
        targets[name] = RelayTarget(
            client=client,
            publisher=dns_publisher(root, upstream),
            profile=upstream.profile,
            ensure_account=account_binder(client, root, upstream),
            forget_account=account_forgetter(client, root, upstream),
        )
    return RelayQueue(db, clock, targets, endpoints=config.endpoints)


def build_context(root: Path, clock: Clock | None = None) -> AcmeContext:
    data = require_initialised(root)
    config = load_config(root)
    clock = clock or SystemClock()
    passphrase = read_passphrase()
    authorities: dict[str, Authority] = {}
    issuers: dict[str, Issuer] = {}
    for level in {e.ca for e in config.endpoints.values()}:
        authorities[level] = load_authority(data.ca, level, passphrase)
        issuers[level] = EmbeddedIssuer(
            authorities[level], clock=clock, pki_base_url=config.pki_base_url
        )
    database = data.open_database()
    with database.write() as conn:
        nonce_key = load_or_create_nonce_key(conn)
    validators = build_validators(config)
    perspectives = endpoint_perspectives(config, data.root)
    endpoint_validators = build_endpoint_validators(config, validators, data.root, perspectives)
    validation = config.validation
    queue = ValidationQueue(
        database,
        clock,
        validators,
        QueueSettings(validation.max_concurrent, validation.lease, validation.poll_interval),
        config.rate_limits.failed_validations_per_account,
        endpoints=endpoint_validators,
    )
    context = AcmeContext(
        config=config,
        db=database,
        clock=clock,
        nonces=NonceService(nonce_key, clock, config.nonce_lifetime),
        authorities=authorities,
        issuers=issuers,
        profiles=build_profiles(config),
        validators=validators,
        queue=queue,
        endpoint_validators=endpoint_validators,
        endpoint_caa_checkers=build_endpoint_caa_checkers(config, perspectives),
    )
    context.relay = build_relay(config, data.root, database, clock)
    # CAA needs the context's account URLs; the queue's validations check it once proven.
    queue.caa = context.caa
    return context


def _descriptions(profiles: dict[str, LeafProfile]) -> dict[str, str]:
    return {name: profile.description for name, profile in profiles.items()}


def console_validators(
    config: ServerConfig,
    local: dict[str, ChallengeValidator],
    endpoint_validators: dict[str, dict[str, ChallengeValidator]],
) -> dict[str, ChallengeValidator]:
    """The validators the console's domain checks use: those of the first public endpoint
    (by name) with remote perspectives, so its checks are corroborated as that endpoint's
    validations are (BR 3.2.2.9); the server's own where no endpoint has perspectives."""
    for name in sorted(config.endpoints):
        endpoint = config.endpoints[name]
        if endpoint.type == "public" and endpoint.perspectives is not None:
            return endpoint_validators[name]
    return local


def build_console_context(
    config: ServerConfig, db: Database, clock: Clock, root: Path | None = None
) -> ConsoleContext:
    """The console's context outside a server (the CLI on a data directory, ``root``, where
    the perspectives' files are)."""
    local = build_validators(config)
    validators = local
    if root is not None:
        chosen = build_endpoint_validators(config, local, root)
        validators = console_validators(config, local, chosen)
    return ConsoleContext(
        config=config,
        db=db,
        clock=clock,
        validators=validators,
        profile_descriptions=_descriptions(build_profiles(config)),
    )


def console_context_of(ctx: AcmeContext) -> ConsoleContext:
    """The console context of a running server: its database, clock and validators."""
    return ConsoleContext(
        config=ctx.config,
        db=ctx.db,
        clock=ctx.clock,
        validators=console_validators(ctx.config, ctx.validators, ctx.endpoint_validators),
        profile_descriptions=_descriptions(ctx.profiles),
    )
