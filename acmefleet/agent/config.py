"""An agent's configuration file (TOML), e.g.::

    [agent]
    listen = "0.0.0.0:8600"
    cert_file = "agent.pem"           # this agent's certificate (its identity: a dNSName)
    key_file = "agent.key"            # 0600
    client_ca_file = "servers-ca.pem" # the CA that signs the ACME servers' client certificates
    client_identity = "acme.example.net"  # optional: the one client dNSName accepted
    max_concurrent_checks = 16
    max_connections = 64
    request_timeout_seconds = 10      # the request must arrive this soon after the handshake

    [validation]                      # the same keys as the server's [validation]
    dns_resolvers = ["192.0.2.53"]
    timeout_seconds = 8

Relative paths are relative to the file's directory.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acmefleet.config import ConfigError, ValidationConfig, parse_validation

_AGENT_KEYS = {
    "listen",
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_identity",
    "max_concurrent_checks",
    "max_connections",
    "request_timeout_seconds",
}
DEFAULT_PORT = 8600


@dataclass(frozen=True)
class AgentConfig:
    host: str
    port: int
    cert_file: Path
    key_file: Path
    client_ca_file: Path
    client_identity: str | None
    max_concurrent_checks: int
    max_connections: int
    validation: ValidationConfig
    request_timeout: float = 10.0


def _listen(text: Any) -> tuple[str, int]:
    if not isinstance(text, str):
        raise ConfigError("agent.listen must be HOST:PORT")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(DEFAULT_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"agent.listen: {text!r} must be HOST:PORT")
    return host, int(port)


def _count(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ConfigError(f"agent.{key} must be a whole number from 1 to 10000")
    return value


def _seconds(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 300:
        raise ConfigError(f"agent.{key} must be a number of seconds in (0, 300]")
    return float(value)


def parse_agent_config(raw: dict[str, Any], base: Path) -> AgentConfig:
    agent = raw.get("agent")
    if not isinstance(agent, dict):
        raise ConfigError("no [agent] table")
    unknown = set(agent) - _AGENT_KEYS
    if unknown:
        raise ConfigError(f"agent: unknown setting(s) {sorted(unknown)}")
    unknown_tables = set(raw) - {"agent", "validation"}
    if unknown_tables:
        raise ConfigError(f"unknown table(s) {sorted(unknown_tables)}")

    def path(key: str) -> Path:
        value = agent.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"agent.{key} must be a file name")
        return base / value

    identity = agent.get("client_identity")
    if identity is not None and (
        not isinstance(identity, str) or not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", identity)
    ):
        raise ConfigError("agent.client_identity must be a DNS name")
    host, port = _listen(agent.get("listen", f"0.0.0.0:{DEFAULT_PORT}"))
    validation = raw.get("validation", {})
    if not isinstance(validation, dict):
        raise ConfigError("[validation] must be a table")
    return AgentConfig(
        host=host,
        port=port,
        cert_file=path("cert_file"),
        key_file=path("key_file"),
        client_ca_file=path("client_ca_file"),
        client_identity=identity.lower() if identity else None,
        max_concurrent_checks=_count(agent, "max_concurrent_checks", 16),
        max_connections=_count(agent, "max_connections", 64),
        validation=parse_validation(validation),
        request_timeout=_seconds(agent, "request_timeout_seconds", 10.0),
    )


def load_agent_config(path: Path) -> AgentConfig:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return parse_agent_config(raw, path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
