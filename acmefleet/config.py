"""The server's configuration file (``config.toml`` in the data directory)."""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from acmefleet.baseline import dcv_reuse_period

CONFIG_FILE = "config.toml"
# One validation (DNS, connections, redirects, the response) may take at most this long.
MAX_VALIDATION_SECONDS = 300
EndpointType = Literal["private", "public"]
# Challenge types a public endpoint may offer, in the order they are listed to clients.
CHALLENGE_TYPES = ("http-01", "dns-01", "tls-alpn-01")
DNS_PORT = 53
# CA/B BR 4.2.1 / 3.2.2.4: domain validation data may be reused for at most 398 days, and
# from 2026-03-15 on for less (ballot SC-081: ``models.dcv_reuse_period``): the configuration
# refuses more than the period in force when it is loaded, and issuance caps it again.
MAX_REUSE_DAYS = 398
ReuseScope = Literal["account", "organisation"]


class ConfigError(ValueError):
    """The configuration file is missing or wrong; the message says where."""


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    type: EndpointType
    ca: str
    profiles: tuple[str, ...]
    default_profile: str
    # What a public endpoint offers for a name not validated in the console (a wildcard:
    # dns-01 only, RFC 8555 §7.1.3 and CA/B BR 3.2.2.4). Private endpoints never use it
    # (the configuration file gives them none).
    challenges: tuple[str, ...] = CHALLENGE_TYPES
    # The issuer domain names CAA records name this CA by (RFC 8659 §4.2): a public endpoint
    # issues only where the relevant CAA RRset authorises one of them (or there is none).
    # Private endpoints never check CAA (the configuration file gives them none).
    caa_identities: tuple[str, ...] = ()
    # The [perspectives.<name>] set that corroborates this public endpoint's validations
    # (CA/B BR 3.2.2.9); None: the server's own check alone. Private endpoints have none.
    perspectives: str | None = None
    # A public endpoint's upstream CA ([upstreams.NAME]): finalize relays the order to it.
    upstream: str | None = None


@dataclass(frozen=True)
class PerspectiveConfig:
    """One remote network perspective: an ``acmefleet validator`` agent."""

    name: str  # shown in problem documents; never the address
    url: str  # https://HOST:PORT
    identity: str  # a dNSName the agent's certificate must carry
    region: str | None = None  # its Regional Internet Registry (ARIN, RIPE, APNIC, ...)


@dataclass(frozen=True)
class PerspectiveSet:
    """Remote perspectives and the mutual-TLS material to call them ([perspectives.<name>]).

    Relative paths are relative to the data directory."""

    name: str
    ca_file: Path  # the CA that signs the agents' certificates
    client_cert_file: Path  # the server's client certificate, and its key (0600)
    client_key_file: Path
    agents: tuple[PerspectiveConfig, ...]


@dataclass(frozen=True)
class Limit:
    """At most ``count`` in each window of ``window`` (fixed windows aligned to the epoch)."""

    count: int
    window: timedelta


@dataclass(frozen=True)
class Rfc2136Config:
    """Where an upstream's dns-01 records are written: RFC 2136 updates signed with TSIG."""

    server: str  # an IP address
    port: int
    key_name: str
    algorithm: str
    secret_file: Path  # the TSIG secret (base64), 0600
    zone: str | None = None
    # Waited for after the records are written, before the upstream is told to look: the
    # zone's other authoritative servers (secondaries) must have them too.
    propagation_seconds: float = 10.0


@dataclass(frozen=True)
class UpstreamConfig:
    """An upstream ACME CA a public endpoint takes its certificates from (``[upstreams.NAME]``).

    The EAB HMAC key is named, never held here: a file (0600) or an environment variable.
    Relative paths are under the data directory."""

    name: str
    directory_url: str
    ca_bundle: Path | None = None  # None: the system's trust store
    account_key: Path | None = None  # None: upstreams/NAME/account.key in the data directory
    eab_kid: str | None = None
    eab_hmac_key_file: Path | None = None
    eab_hmac_key_env: str | None = None
    contact: tuple[str, ...] = ()
    profile: str | None = None
    timeout: float = 30.0
    # A relayed order is retried (backoff, Retry-After) this long, then made invalid.
    retry_for: timedelta = timedelta(hours=1)
    dns01: Rfc2136Config | None = None


@dataclass(frozen=True)
class RateLimits:
    """What one account, organisation or address may do; ``None`` turns a limit off."""

    new_accounts_per_address: Limit | None = Limit(300, timedelta(hours=3))
    eab_failures_per_address: Limit | None = Limit(30, timedelta(hours=1))
    eab_failures_per_credential: Limit | None = Limit(10, timedelta(hours=1))
    new_orders_per_account: Limit | None = Limit(300, timedelta(hours=3))
    new_orders_per_organisation: Limit | None = Limit(10_000, timedelta(hours=1))
    failed_validations_per_account: Limit | None = Limit(60, timedelta(hours=1))
    pending_authorizations_per_account: int | None = 1000


MAX_LIMIT_WINDOW = timedelta(days=31)  # counters older than this are pruned
_LIMIT_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_LIMIT_FORMAT = re.compile(r"(\d{1,9})\s*/\s*(\d{1,6})\s*([smhd])")


def parse_limit(raw: Any, where: str) -> Limit | None:
    """``"300/3h"`` (count per window: s, m, h or d) or ``"off"``."""
    if raw == "off":
        return None
    found = _LIMIT_FORMAT.fullmatch(raw) if isinstance(raw, str) else None
    if found is None or int(found[1]) < 1 or int(found[2]) < 1:
        raise ConfigError(f'{where} must look like "300/3h" (count/window in s, m, h, d) or "off"')
    window = timedelta(**{_LIMIT_UNITS[found[3]]: int(found[2])})
    if window > MAX_LIMIT_WINDOW:
        raise ConfigError(f"{where}: a window is at most {MAX_LIMIT_WINDOW.days} days")
    return Limit(int(found[1]), window)


def _rate_limits(raw: dict[str, Any]) -> RateLimits:
    defaults = RateLimits()
    values: dict[str, Any] = {}
    for name in RateLimits.__dataclass_fields__:
        if name not in raw:
            continue
        where = f"rate_limits.{name}"
        if name == "pending_authorizations_per_account":
            value = raw[name]
            if value == "off":
                values[name] = None
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                values[name] = value
            else:
                raise ConfigError(f'{where} must be a positive whole number or "off"')
        else:
            values[name] = parse_limit(raw[name], where)
    unknown = set(raw) - set(RateLimits.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"rate_limits: unknown setting(s) {sorted(unknown)}")
    return replace(defaults, **values)


@dataclass(frozen=True)
class ValidationConfig:
    http01_port: int = 80
    tls_alpn01_port: int = 443
    timeout: timedelta = timedelta(seconds=10)
    # dns-01 asks these (address, port); none: the system's resolvers (/etc/resolv.conf).
    dns_resolvers: tuple[tuple[str, int], ...] = ()
    allow_private_addresses: bool = False
    # Static answers for names in a closed network: suffix -> address ("*" matches all).
    hosts: dict[str, str] = field(default_factory=dict)
    # CAA on public endpoints (RFC 8659, CA/B BR 3.2.2.8). Off only for a closed network
    # with no DNS to ask (a lab): the server then warns that public certificates skip it.
    check_caa: bool = True
    # The validation queue (shared by every process through the database): validations one
    # process runs at once; how long a claim holds without being renewed; how often each
    # process looks for work queued by the others.
    max_concurrent: int = 16
    lease: timedelta = timedelta(seconds=10)
    poll_interval: timedelta = timedelta(seconds=1)
    # A validated authorization is reused for a new order within this long of its
    # validation (zero: never), by the same account or any account of the organisation on
    # the same endpoint.
    authorization_reuse: timedelta = timedelta(days=30)
    reuse_scope: ReuseScope = "account"


@dataclass(frozen=True)
class LimitsConfig:
    """What one client may hold or send ([limits]); each listener of each worker applies them.

    Connections past ``max_connections`` are answered 503 and closed; a request head (request
    line and headers) with more than ``max_headers`` lines or ``max_header_bytes`` bytes gets
    431. A connection must finish its TLS handshake within ``tls_handshake_timeout`` and send
    a complete request head within ``header_timeout`` of being made (or of a request's first
    byte on a kept-alive connection), then its body within ``body_timeout``; otherwise it is
    closed (408 when part of a request came). ``idle_timeout`` closes a kept-alive connection
    between requests and one whose client stops reading its response. Console sign-ins:
    once ``login_failures_per_source`` have failed from one address (an IPv6 /64), or
    ``login_failures_overall`` from all, within ``login_window``, the next get 429 until
    enough of those failures are older than the window.
    """

    max_connections: int = 400
    max_headers: int = 100
    max_header_bytes: int = 64 * 1024
    tls_handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 30.0
    login_failures_per_source: int = 10
    login_failures_overall: int = 100
    login_window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the state lives and how each server process reaches it.

    ``url``: None for SQLite in the data directory (the embedded default), or a PostgreSQL
    URL (``postgresql+psycopg://user@host/db``; a password belongs in a libpq password file
    named by ``?passfile=``, not here). The pool is per process: a server with W workers
    holds up to W x (``pool_size`` + ``max_overflow``) connections, which PostgreSQL's
    ``max_connections`` must allow for every replica together.
    """

    url: str | None = None
    pool_size: int = 5
    max_overflow: int = 10
    # A request that finds every pooled connection busy waits this long, then gets 503.
    pool_timeout: float = 10.0
    # PostgreSQL only: a connection attempt, a statement and a transaction left idle are cut
    # after these, so a database that went away answers 503 instead of hanging a request.
    connect_timeout: int = 5
    statement_timeout: float = 30.0

    @property
    def dialect(self) -> str:
        return "sqlite" if self.url is None or self.url.startswith("sqlite") else "postgresql"


@dataclass(frozen=True)
class ServerConfig:
    base_url: str
    pki_base_url: str
    listen: str
    pki_listen: str
    endpoints: dict[str, EndpointConfig]
    validation: ValidationConfig
    eab_lifetime: timedelta
    order_lifetime: timedelta
    authz_lifetime: timedelta
    nonce_lifetime: timedelta
    database_url: str | None
    tls_names: tuple[str, ...]
    # Addresses of reverse proxies or load balancers whose X-Forwarded-For / -Proto the
    # server believes. None by default: otherwise any local process could choose the client
    # address that rate limits and the login throttle count against.
    trusted_proxies: tuple[str, ...] = ()
    # Extra or overridden leaf profiles: name -> {kind, validity_days, description}.
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Expired orders and authorizations are deleted this long after they expire, checked
    # every ``housekeeping_interval`` (used nonces as soon as they expire).
    keep_expired: timedelta = timedelta(days=7)
    housekeeping_interval: timedelta = timedelta(minutes=10)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    perspectives: dict[str, PerspectiveSet] = field(default_factory=dict)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    upstreams: dict[str, UpstreamConfig] = field(default_factory=dict)

    def directory_url(self, endpoint: str) -> str:
        return f"{self.base_url}/acme/{endpoint}/directory"


def public_pki_warnings(config: ServerConfig) -> list[str]:
    """Settings that make public certificates fail the CA/B Forum requirements."""
    if not any(e.type == "public" for e in config.endpoints.values()):
        return []
    found = [
        f"endpoint {e.name} is public but has no remote perspectives: CA/B BR 3.2.2.9 asks "
        "that its validations be corroborated by acmefleet validator agents "
        "(set its 'perspectives')"
        for e in config.endpoints.values()
        if e.type == "public" and e.perspectives is None
    ]
    if not config.validation.check_caa:
        found.append(
            "validation.check_caa is false: public endpoints issue without checking CAA "
            "(RFC 8659; CA/B BR 3.2.2.8 requires it): only for a closed network without DNS"
        )
    return found + _pki_url_warnings(config)


def _pki_url_warnings(config: ServerConfig) -> list[str]:
    host = urlsplit(config.pki_base_url).hostname or ""
    try:
        internal = not ipaddress.ip_address(host).is_global
    except ValueError:
        internal = host == "localhost" or "." not in host or host.endswith(".local")
    if not internal:
        return []
    return [
        f"pki_base_url {config.pki_base_url} names an internal host; public certificates carry "
        "it in their CRL and issuer URLs and then fail the CA/B Forum requirements "
        "(set server.pki_base_url to a public name)"
    ]


def _require(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing '{key}'")
    value = table[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def _check_url(url: str, schemes: tuple[str, ...], where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"{where}: {url!r} must be {'/'.join(schemes)}://HOST[:PORT]")
    return url.rstrip("/")


# RFC 8659 §4.2: issuer-domain-name = label *("." label),
# label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)).
_CAA_LABEL = r"[a-z0-9](?:-*[a-z0-9])*"
_CAA_ISSUER = re.compile(rf"{_CAA_LABEL}(?:\.{_CAA_LABEL})*")


def default_caa_identity(base_url: str) -> str | None:
    """The host of ``base_url`` if it fits the issuer-domain-name grammar (an IPv4 address
    does, as digits; an IPv6 one does not). Domain owners name a CA by its domain, so an
    operator with an address there should set ``caa_identities``."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host if _CAA_ISSUER.fullmatch(host) else None


def _caa_identities(raw: dict[str, Any], kind: str, where: str, base_url: str) -> tuple[str, ...]:
    """A public endpoint's CAA issuer domain names: as configured, else the host of
    ``server.base_url`` (what a domain owner most likely names when the operator said
    nothing). A private endpoint checks no CAA, so naming any is a mistake."""
    if kind == "private":
        if "caa_identities" in raw:
            raise ConfigError(f"{where}: a private endpoint checks no CAA: no 'caa_identities'")
        return ()
    if "caa_identities" not in raw:
        host = default_caa_identity(base_url)
        if host is None:
            raise ConfigError(
                f"{where}: set 'caa_identities' (the issuer domain names CAA records name this "
                f"CA by); the host of server.base_url cannot be one"
            )
        return (host,)
    chosen = raw["caa_identities"]
    if (
        not isinstance(chosen, list)
        or not chosen
        or not all(isinstance(c, str) and _CAA_ISSUER.fullmatch(c.lower()) for c in chosen)
    ):
        raise ConfigError(
            f"{where}: 'caa_identities' must be a non-empty list of domain names "
            '(e.g. ["acme.example.com"]) without a trailing dot'
        )
    return tuple(dict.fromkeys(c.lower() for c in chosen))


def _endpoint(raw: dict[str, Any], index: int, base_url: str) -> EndpointConfig:
    where = f"endpoints[{index}]"
    name = _require(raw, "name", str, where)
    kind = _require(raw, "type", str, where)
    if kind not in ("private", "public"):
        raise ConfigError(f"{where}: type must be 'private' or 'public', not {kind!r}")
    profiles = tuple(_require(raw, "profiles", list, where))
    if not profiles or not all(isinstance(p, str) for p in profiles):
        raise ConfigError(f"{where}: 'profiles' must be a non-empty list of names")
    default = raw.get("default_profile", profiles[0])
    if default not in profiles:
        raise ConfigError(f"{where}: default_profile {default!r} is not in profiles")
    return EndpointConfig(
        name,
        kind,
        _require(raw, "ca", str, where),
        profiles,
        default,
        _challenges(raw, kind, where),
        _caa_identities(raw, kind, where, base_url),
        _endpoint_perspectives(raw, kind, where),
        _endpoint_upstream(raw, kind, where),
    )


def _endpoint_upstream(raw: dict[str, Any], kind: str, where: str) -> str | None:
    chosen = raw.get("upstream")
    if chosen is None:
        return None
    if kind != "public":
        raise ConfigError(f"{where}: only a public endpoint relays to an upstream CA")
    if not isinstance(chosen, str) or not _UPSTREAM_NAME.fullmatch(chosen):
        raise ConfigError(f"{where}: 'upstream' must name an [upstreams.NAME] table")
    return chosen


def _endpoint_perspectives(raw: dict[str, Any], kind: str, where: str) -> str | None:
    chosen = raw.get("perspectives")
    if chosen is None:
        return None
    if kind == "private":
        raise ConfigError(f"{where}: a private endpoint validates no names: no 'perspectives'")
    if not isinstance(chosen, str):
        raise ConfigError(f"{where}: 'perspectives' must name a [perspectives.<name>] table")
    return chosen


# BR 3.2.2.9: at least two remote network perspectives (validation/mpic.py applies the quorum).
MIN_PERSPECTIVES = 2
_PERSPECTIVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_SET_KEYS = {"ca_file", "client_cert_file", "client_key_file", "agents"}
_AGENT_KEYS = {"name", "url", "identity", "region"}


def _perspective_set(name: str, raw: Any) -> PerspectiveSet:
    where = f"perspectives.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - _SET_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}")
    files = {key: Path(_require(raw, key, str, where)) for key in sorted(_SET_KEYS - {"agents"})}
    agents_raw = _require(raw, "agents", list, where)
    if len(agents_raw) < MIN_PERSPECTIVES:
        raise ConfigError(
            f"{where}: CA/B BR 3.2.2.9 needs at least {MIN_PERSPECTIVES} remote perspectives "
            "([[perspectives.NAME.agents]])"
        )
    agents: list[PerspectiveConfig] = []
    for index, agent in enumerate(agents_raw):
        at = f"{where}.agents[{index}]"
        if not isinstance(agent, dict):
            raise ConfigError(f"{at} must be a table")
        unknown = set(agent) - _AGENT_KEYS
        if unknown:
            raise ConfigError(f"{at}: unknown setting(s) {sorted(unknown)}")
        url = _check_url(_require(agent, "url", str, at), ("https",), at)
        label = agent.get("name", f"perspective-{index + 1}")
        if not isinstance(label, str) or not _PERSPECTIVE_NAME.fullmatch(label):
            raise ConfigError(f"{at}: 'name' must be letters, digits, '.', '_' or '-'")
        identity = _require(agent, "identity", str, at)
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", identity):
            raise ConfigError(f"{at}: 'identity' must be the DNS name in the agent's certificate")
        region = agent.get("region")
        if region is not None and (
            not isinstance(region, str) or not _PERSPECTIVE_NAME.fullmatch(region)
        ):
            raise ConfigError(f"{at}: 'region' must be a name such as RIPE or ARIN")
        agents.append(PerspectiveConfig(label, url, identity.lower(), region))
    # Distinct perspectives (BR 3.2.2.9): one agent listed twice would count twice.
    for field_name in ("name", "url", "identity"):
        values = [getattr(a, field_name) for a in agents]
        if len(set(values)) != len(values):
            raise ConfigError(f"{where}: each agent's {field_name} must be unique")
    regions = {a.region for a in agents}
    if None in regions and len(regions) > 1:
        raise ConfigError(f"{where}: give every agent a 'region', or none")
    if None not in regions and len(regions) < 2:
        raise ConfigError(f"{where}: CA/B BR 3.2.2.9 needs perspectives in at least 2 RIR regions")
    return PerspectiveSet(
        name,
        files["ca_file"],
        files["client_cert_file"],
        files["client_key_file"],
        tuple(agents),
    )


def _perspectives(raw: Any, endpoints: list[EndpointConfig]) -> dict[str, PerspectiveSet]:
    if not isinstance(raw, dict):
        raise ConfigError("[perspectives] must be a table of named perspective sets")
    sets = {name: _perspective_set(name, value) for name, value in raw.items()}
    for endpoint in endpoints:
        if endpoint.perspectives is not None and endpoint.perspectives not in sets:
            raise ConfigError(
                f"endpoint {endpoint.name}: no [perspectives.{endpoint.perspectives}] configured"
            )
    return sets


def _challenges(raw: dict[str, Any], kind: str, where: str) -> tuple[str, ...]:
    if kind == "private":
        if raw.get("challenges"):
            raise ConfigError(f"{where}: a private endpoint validates no names: no 'challenges'")
        return ()
    chosen = raw.get("challenges", list(CHALLENGE_TYPES))
    if not isinstance(chosen, list) or not all(c in CHALLENGE_TYPES for c in chosen):
        raise ConfigError(f"{where}: 'challenges' must be a list from {list(CHALLENGE_TYPES)}")
    return tuple(c for c in CHALLENGE_TYPES if c in chosen)


def parse_resolver(text: Any) -> tuple[str, int]:
    """``"192.0.2.53"``, ``"192.0.2.53:5353"``, ``"2001:db8::53"`` or ``"[2001:db8::53]:5353"``.

    An address, never a name: the resolver is what names are looked up with."""
    where = f"validation.dns_resolvers: {text!r}"
    if not isinstance(text, str):
        raise ConfigError(f"{where} must be a string HOST[:PORT]")
    host, port = text, str(DNS_PORT)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"{where} must look like [IPv6]:PORT")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(f"{where}: {host!r} is not an IP address") from exc
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {port!r} is not a port")
    return str(address), int(port)


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"validation.{key} must be a list")
    return value


def parse_validation(raw: dict[str, Any], now: datetime | None = None) -> ValidationConfig:
    """[validation]: the server's, and each validator agent's own."""
    hosts = raw.get("hosts", {})
    for name, address in hosts.items():
        try:
            ipaddress.ip_address(address)
        except ValueError as exc:
            raise ConfigError(f"validation.hosts: {name!r} -> {address!r} is no address") from exc
    timeout = float(raw.get("timeout_seconds", 10))
    if not 0 < timeout <= MAX_VALIDATION_SECONDS:
        raise ConfigError(
            f"validation.timeout_seconds must lie in (0, {MAX_VALIDATION_SECONDS}], not {timeout}"
        )
    reuse_days = raw.get("authorization_reuse_days", 30)
    at = now if now is not None else datetime.now(UTC)
    in_force = dcv_reuse_period(at)
    most = in_force / timedelta(days=1)
    if (
        isinstance(reuse_days, bool)
        or not isinstance(reuse_days, int | float)
        or not 0 <= reuse_days <= most
    ):
        raise ConfigError(
            f"validation.authorization_reuse_days must lie in [0, {most:g}] (CA/B BR 4.2.1: "
            f"the reuse period in force on {at:%Y-%m-%d}), not {reuse_days!r}"
        )
    scope = raw.get("authorization_reuse_scope", "account")
    if scope not in ("account", "organisation"):
        raise ConfigError(
            "validation.authorization_reuse_scope must be 'account' or 'organisation', "
            f"not {scope!r}"
        )
    return ValidationConfig(
        http01_port=int(raw.get("http01_port", 80)),
        tls_alpn01_port=int(raw.get("tls_alpn01_port", 443)),
        timeout=timedelta(seconds=timeout),
        dns_resolvers=tuple(parse_resolver(r) for r in _list(raw, "dns_resolvers")),
        allow_private_addresses=bool(raw.get("allow_private_addresses", False)),
        hosts=dict(hosts),
        check_caa=_bool(raw, "check_caa", True),
        max_concurrent=_whole(raw, "max_concurrent", 16, 1, 1000),
        lease=_seconds(raw, "lease_seconds", 10, 1, 600),
        poll_interval=_seconds(raw, "poll_seconds", 1, 0.05, 60),
        authorization_reuse=timedelta(days=reuse_days),
        reuse_scope=scope,
    )


def _bool(raw: dict[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"validation.{key} must be true or false")
    return value


def _whole(raw: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"validation.{key} must be a whole number in [{low}, {high}]")
    return value


def _seconds(raw: dict[str, Any], key: str, default: float, low: float, high: float) -> timedelta:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"validation.{key} must be a number of seconds in [{low:g}, {high:g}]")
    return timedelta(seconds=value)


def _positive(table: dict[str, Any], key: str, default: float, unit: str) -> timedelta:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"lifetimes.{key} must be a positive number of {unit}")
    return timedelta(**{unit: float(value)})


# Schemes a database URL may have: SQLAlchemy's name for the driver acmefleet ships with.
_DATABASE_SCHEMES = ("sqlite:///", "postgresql+psycopg://", "postgresql://")
# Setting -> (field, type, smallest, largest). PostgreSQL takes statement_timeout in
# milliseconds up to 2^31 - 1; an hour is far past what any request should wait anyway.
_DATABASE_KEYS: dict[str, tuple[str, type, int, int]] = {
    "pool_size": ("pool_size", int, 1, 1000),
    "max_overflow": ("max_overflow", int, 0, 1000),
    "pool_timeout_seconds": ("pool_timeout", float, 1, 3600),
    "connect_timeout_seconds": ("connect_timeout", int, 1, 3600),
    "statement_timeout_seconds": ("statement_timeout", float, 1, 3600),
}


def _database(url: Any, raw: Any) -> DatabaseConfig:
    if url is not None:
        if not isinstance(url, str) or not url.startswith(_DATABASE_SCHEMES):
            raise ConfigError(
                "server.database_url must be a sqlite:/// or postgresql+psycopg:// URL"
            )
        if url.startswith("postgresql://"):  # SQLAlchemy would pick psycopg2, not shipped
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not isinstance(raw, dict):
        raise ConfigError("[database] must be a table")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _DATABASE_KEYS:
            raise ConfigError(f"database: unknown setting {key!r}")
        name, kind, smallest, largest = _DATABASE_KEYS[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not smallest <= value <= largest  # also false for nan
        ):
            raise ConfigError(f"database: {key!r} must be a number from {smallest} to {largest}")
        if kind is int and not isinstance(value, int):
            raise ConfigError(f"database: {key!r} must be a whole number")
        values[name] = kind(value)
    return DatabaseConfig(url=url, **values)


_LIMIT_KEYS: dict[str, tuple[str, type]] = {
    "max_connections": ("max_connections", int),
    "max_headers": ("max_headers", int),
    "max_header_bytes": ("max_header_bytes", int),
    "tls_handshake_seconds": ("tls_handshake_timeout", float),
    "header_seconds": ("header_timeout", float),
    "body_seconds": ("body_timeout", float),
    "idle_seconds": ("idle_timeout", float),
    "login_failures_per_address": ("login_failures_per_source", int),
    "login_failures_overall": ("login_failures_overall", int),
    "login_window_seconds": ("login_window", float),
}


def _limits(raw: dict[str, Any]) -> LimitsConfig:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _LIMIT_KEYS:
            raise ConfigError(f"limits: unknown setting {key!r}")
        name, kind = _LIMIT_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"limits: {key!r} must be a positive number")
        if kind is int and not isinstance(value, int):
            raise ConfigError(f"limits: {key!r} must be a whole number")
        values[name] = timedelta(seconds=value) if name == "login_window" else kind(value)
    return LimitsConfig(**values)


def _trusted_proxies(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigError("server.trusted_proxies must be a list of addresses or networks")
    found: list[str] = []
    for item in raw:
        try:
            found.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError as exc:
            raise ConfigError(f"server.trusted_proxies: {item!r} is not an address") from exc
    return tuple(found)


# Short: a relayed certificate's CA is recorded as "upstream:NAME" (32 characters at most).
_UPSTREAM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,22}")
_UPSTREAM_KEYS = {
    "directory_url",
    "ca_bundle",
    "account_key",
    "eab_kid",
    "eab_hmac_key_file",
    "eab_hmac_key_env",
    "contact",
    "profile",
    "timeout_seconds",
    "retry_for_seconds",
    "dns01",
}
_RFC2136_KEYS = {
    "server",
    "port",
    "key_name",
    "algorithm",
    "secret_file",
    "zone",
    "propagation_seconds",
}
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512")
_DNS_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\.?\Z){_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def _optional_str(raw: dict[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    return value


def _nonempty(raw: dict[str, Any], key: str, where: str) -> str:
    value = _require(raw, key, str, where)
    if not value.strip():
        raise ConfigError(f"{where}: '{key}' must not be empty")
    return str(value)


def _rfc2136(raw: Any, where: str) -> Rfc2136Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - _RFC2136_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}")
    server = _require(raw, "server", str, where)
    try:
        ipaddress.ip_address(server)
    except ValueError as exc:
        raise ConfigError(f"{where}: 'server' must be an IP address, not {server!r}") from exc
    port = raw.get("port", DNS_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{where}: 'port' must be a port number")
    key_name = _require(raw, "key_name", str, where)
    if not _DNS_NAME.fullmatch(key_name):
        raise ConfigError(f"{where}: 'key_name' must be the TSIG key's DNS name")
    algorithm = str(raw.get("algorithm", "hmac-sha256")).lower()
    if algorithm not in TSIG_ALGORITHMS:
        raise ConfigError(f"{where}: 'algorithm' must be one of {list(TSIG_ALGORITHMS)}")
    zone = _optional_str(raw, "zone", where)
    if zone is not None and not _DNS_NAME.fullmatch(zone):
        raise ConfigError(f"{where}: 'zone' must be a DNS name")
    propagation = raw.get("propagation_seconds", 10)
    if (
        isinstance(propagation, bool)
        or not isinstance(propagation, int | float)
        or not 0 <= propagation <= 600
    ):
        raise ConfigError(f"{where}: 'propagation_seconds' must be a number in [0, 600]")
    return Rfc2136Config(
        server,
        port,
        key_name,
        algorithm,
        Path(_nonempty(raw, "secret_file", where)),
        zone,
        float(propagation),
    )


def _upstream(name: str, raw: Any) -> UpstreamConfig:
    where = f"upstreams.{name}"
    if not _UPSTREAM_NAME.fullmatch(name):
        raise ConfigError(f"{where}: a name is lower-case letters, digits, '-' or '_'")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - _UPSTREAM_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}")
    directory_url = _require(raw, "directory_url", str, where)
    try:
        parts = urlsplit(directory_url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or "@" in parts.netloc
        or (port is not None and not 1 <= port <= 65535)
    ):
        raise ConfigError(f"{where}: 'directory_url' must be an https://HOST[:PORT]/… URL")
    kid = _optional_str(raw, "eab_kid", where)
    key_file = _optional_str(raw, "eab_hmac_key_file", where)
    key_env = _optional_str(raw, "eab_hmac_key_env", where)
    if key_env is not None and not _ENV_NAME.fullmatch(key_env):
        raise ConfigError(f"{where}: 'eab_hmac_key_env' must name an environment variable")
    if kid is not None and (key_file is None) == (key_env is None):
        raise ConfigError(
            f"{where}: with 'eab_kid', give the HMAC key in 'eab_hmac_key_file' (0600) "
            "or 'eab_hmac_key_env', one of them (never in this file)"
        )
    if kid is None and (key_file is not None or key_env is not None):
        raise ConfigError(f"{where}: an EAB HMAC key needs its 'eab_kid'")
    contact = raw.get("contact", [])
    if not isinstance(contact, list) or not all(
        isinstance(c, str) and re.fullmatch(r"mailto:[^,\s@]+@[^,\s@]+", c) for c in contact
    ):
        raise ConfigError(f"{where}: 'contact' must be a list of mailto: URLs")
    timeout = raw.get("timeout_seconds", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 300:
        raise ConfigError(f"{where}: 'timeout_seconds' must be a number in [1, 300]")
    retry_for = raw.get("retry_for_seconds", 3600)
    if (
        isinstance(retry_for, bool)
        or not isinstance(retry_for, int | float)
        or not 60 <= retry_for <= 7 * 86400
    ):
        raise ConfigError(f"{where}: 'retry_for_seconds' must be a number in [60, 604800]")
    ca_bundle = _optional_str(raw, "ca_bundle", where)
    account_key = _optional_str(raw, "account_key", where)
    dns01 = raw.get("dns01")
    return UpstreamConfig(
        name=name,
        directory_url=directory_url,
        ca_bundle=Path(ca_bundle) if ca_bundle else None,
        account_key=Path(account_key) if account_key else None,
        eab_kid=kid,
        eab_hmac_key_file=Path(key_file) if key_file else None,
        eab_hmac_key_env=key_env,
        contact=tuple(contact),
        profile=_optional_str(raw, "profile", where),
        timeout=float(timeout),
        retry_for=timedelta(seconds=retry_for),
        dns01=_rfc2136(dns01, f"{where}.dns01") if dns01 is not None else None,
    )


def _upstreams(raw: Any) -> dict[str, UpstreamConfig]:
    if not isinstance(raw, dict):
        raise ConfigError("[upstreams] must be a table of named upstream CAs")
    return {name: _upstream(name, value) for name, value in raw.items()}


def parse_config(raw: dict[str, Any], now: datetime | None = None) -> ServerConfig:
    """``now``: when the configuration is loaded (bounds that follow a schedule, such as the
    BR's reuse period, are the ones in force then); the system clock unless given."""
    server = raw.get("server", {})
    base_url = _check_url(_require(server, "base_url", str, "server"), ("https",), "server")
    pki_base_url = _check_url(
        _require(server, "pki_base_url", str, "server"), ("http",), "server.pki_base_url"
    )
    endpoints_raw = raw.get("endpoints", [])
    endpoints = [_endpoint(item, i, base_url) for i, item in enumerate(endpoints_raw)]
    if not endpoints:
        raise ConfigError("no [[endpoints]] configured")
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise ConfigError("endpoint names must be unique")
    upstreams = _upstreams(raw.get("upstreams", {}))
    for endpoint in endpoints:
        if endpoint.upstream is not None and endpoint.upstream not in upstreams:
            raise ConfigError(
                f"endpoint {endpoint.name}: no [upstreams.{endpoint.upstream}] configured"
            )
    lifetimes = raw.get("lifetimes", {})
    database = _database(server.get("database_url"), raw.get("database", {}))
    return ServerConfig(
        base_url=base_url,
        pki_base_url=pki_base_url,
        listen=str(server.get("listen", "127.0.0.1:8555")),
        pki_listen=str(server.get("pki_listen", "127.0.0.1:8556")),
        endpoints={e.name: e for e in endpoints},
        validation=parse_validation(raw.get("validation", {}), now),
        eab_lifetime=timedelta(days=float(lifetimes.get("eab_days", 30))),
        order_lifetime=timedelta(hours=float(lifetimes.get("order_hours", 168))),
        authz_lifetime=timedelta(days=float(lifetimes.get("authorization_days", 30))),
        nonce_lifetime=timedelta(minutes=float(lifetimes.get("nonce_minutes", 30))),
        keep_expired=_positive(lifetimes, "keep_expired_days", 7.0, "days"),
        housekeeping_interval=_positive(lifetimes, "housekeeping_minutes", 10.0, "minutes"),
        rate_limits=_rate_limits(raw.get("rate_limits", {})),
        database_url=database.url,
        tls_names=tuple(server.get("tls_names", [])),
        trusted_proxies=_trusted_proxies(server.get("trusted_proxies", [])),
        profiles=dict(raw.get("profiles", {})),
        limits=_limits(raw.get("limits", {})),
        perspectives=_perspectives(raw.get("perspectives", {}), endpoints),
        database=database,
        upstreams=upstreams,
    )


def load_config(data_dir: Path) -> ServerConfig:
    path = data_dir / CONFIG_FILE
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run 'acmefleet server init' first") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def render_default_config(
    base_url: str,
    pki_base_url: str,
    listen: str,
    pki_listen: str,
    tls_names: tuple[str, ...] = (),
    database_url: str | None = None,
) -> str:
    names = ", ".join(f'"{name}"' for name in tls_names)
    # A JSON string is a TOML basic string (same escapes), whatever the URL holds.
    database = f"database_url = {json.dumps(database_url)}\n" if database_url else ""
    return DEFAULT_CONFIG_TEMPLATE.format(
        database=database,
        base_url=base_url,
        caa_identity=default_caa_identity(base_url) or "acme.example.com",
        pki_base_url=pki_base_url,
        listen=listen,
        pki_listen=pki_listen,
        tls_names=f"[{names}]",
    )


DEFAULT_CONFIG_TEMPLATE = """\
# acmefleet server configuration. Edit, then restart 'acmefleet server run'.

[server]
# The URL clients reach the ACME server at (directory: BASE/acme/ENDPOINT/directory).
base_url = "{base_url}"
# Plain-HTTP URL where issuer certificates and CRLs are published (put into certificates).
pki_base_url = "{pki_base_url}"
listen = "{listen}"
pki_listen = "{pki_listen}"
# Extra names for the server's own TLS certificate (localhost and the base_url host are always in).
tls_names = {tls_names}
# Load balancers or proxies whose X-Forwarded-For the server believes (e.g. ["10.0.0.5"]).
trusted_proxies = []
# The database: SQLite in the data directory unless set. PostgreSQL (several replicas share it):
#   database_url = "postgresql+psycopg://acmefleet@db.example.com/acmefleet?passfile=/etc/acmefleet/pgpass"
# with the password in that libpq password file (0600), never in this file.
{database}
[lifetimes]
eab_days = 30
order_hours = 168
authorization_days = 30
nonce_minutes = 30
# Expired orders and authorizations are deleted this many days after they expire.
keep_expired_days = 7
housekeeping_minutes = 10

# Connections to the database, per server process (a worker): workers x (pool_size +
# max_overflow) for each replica must fit PostgreSQL's max_connections. The timeouts make a
# database that went away answer 503 with Retry-After instead of hanging a request.
[database]
pool_size = 5
max_overflow = 10
pool_timeout_seconds = 10
connect_timeout_seconds = 5
statement_timeout_seconds = 30

# What one client may hold or send; each listener (HTTPS, plain-HTTP PKI) of each worker
# applies them on its own, so the whole server holds up to workers x 2 x max_connections.
[limits]
# Open connections per listener and worker; the next one is answered 503 and closed.
# Keep workers x 2 x max_connections below the process's open-file limit (ulimit -n).
max_connections = 400
# A request head (request line and headers) past these gets 431.
max_headers = 100
max_header_bytes = 65536
# A new connection must finish its TLS handshake, then send a whole request head, in time;
# a request's body must arrive within body_seconds of its head. Otherwise it is closed (408).
tls_handshake_seconds = 10
header_seconds = 10
body_seconds = 30
# A kept-alive connection may wait this long for its next request, and a client that stops
# reading its response is dropped after it.
idle_seconds = 30
# Console sign-in: failed token logins within the window, per address (IPv6: per /64) and
# from all addresses together, after which the login form answers 429 until the window moves.
login_failures_per_address = 10
login_failures_overall = 100
login_window_seconds = 900

[validation]
http01_port = 80
# tls-alpn-01 (RFC 8737) connects here; 443 but in closed networks and tests.
tls_alpn01_port = 443
# dns-01 asks these resolvers ("ADDRESS[:PORT]"); empty: the system's (/etc/resolv.conf).
dns_resolvers = []
# One deadline per validation: name resolution, connections, redirects and the response
# (dns-01: every query and CNAME followed).
timeout_seconds = 10
# Validation never connects to loopback or private addresses unless this is true.
allow_private_addresses = false
# CAA (RFC 8659) on public endpoints, through dns_resolvers. Turn it off only in a closed
# network with no DNS to ask: public certificates then skip a CA/B requirement (the server
# warns at start-up).
check_caa = true
# Validations one server process runs at once; the rest wait in the queue (in the database,
# shared by every worker and replica). A claimed validation is held by a lease renewed while
# it runs: a process that dies leaves it to another once lease_seconds have passed (never
# later than its deadline). Each process looks for queued work every poll_seconds.
max_concurrent = 16
lease_seconds = 10
poll_seconds = 1
# A validated authorization is reused for new orders within this many days of its
# validation (0: never; at most the CA/B BR 4.2.1 period in force: 398 days, 200 from
# 2026-03-15, 100 from 2027-03-15, 10 from 2029-03-15). Scope "account": by the account that
# validated it; "organisation": by any account of its organisation on the same endpoint.
authorization_reuse_days = 30
authorization_reuse_scope = "account"
# Static name -> address answers for closed networks ("*" matches every name).
[validation.hosts]

# Rate limits, shared by all workers and replicas: "COUNT/WINDOW" (s, m, h, d) or "off".
# A refused request gets rateLimited (HTTP 429) with Retry-After; refusals do not count.
[rate_limits]
new_accounts_per_address = "300/3h"
eab_failures_per_address = "30/1h"
eab_failures_per_credential = "10/1h"
new_orders_per_account = "300/3h"
new_orders_per_organisation = "10000/1h"
failed_validations_per_account = "60/1h"
pending_authorizations_per_account = 1000

# Private endpoint: private CA, no domain validation, names must belong to the organisation.
[[endpoints]]
name = "private"
type = "private"
ca = "private"
profiles = ["private-server"]

# Public endpoint: domain control proven by a challenge unless validated in the console.
# A wildcard is offered dns-01 only.
[[endpoints]]
name = "public"
type = "public"
ca = "public"
profiles = ["public-dv"]
challenges = ["http-01", "dns-01", "tls-alpn-01"]
# CAA (RFC 8659): the issuer domain names domain owners authorise this CA by, as in
# 'example.com. CAA 0 issue "{caa_identity}"'. Checked after each validation and again at
# issuance when older than 8 hours; a record naming only other CAs refuses the certificate.
caa_identities = ["{caa_identity}"]
# Corroborate every validation from remote "acmefleet validator" agents (CA/B BR 3.2.2.9):
# perspectives = "world"

# [perspectives.world]
# ca_file = "mpic/agents-ca.pem"         # signs the agents' certificates
# client_cert_file = "mpic/server.pem"   # this server's client certificate and key (0600)
# client_key_file = "mpic/server.key"
# [[perspectives.world.agents]]          # at least two
# name = "eu-west"
# url = "https://192.0.2.10:8600"
# identity = "eu-west.validators.example.net"
"""
