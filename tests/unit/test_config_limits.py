"""The [limits] table of config.toml: defaults, the rendered template, bad values."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from typing import Any

import pytest

from acmefleet.config import ConfigError, LimitsConfig, parse_config, render_default_config


def _config(limits: dict[str, Any] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "server": {"base_url": "https://acme.test", "pki_base_url": "http://acme.test"},
        "endpoints": [{"name": "p", "type": "private", "ca": "private", "profiles": ["x"]}],
    }
    if limits is not None:
        raw["limits"] = limits
    return raw


def test_without_a_limits_table_the_defaults_apply() -> None:
    assert parse_config(_config()).limits == LimitsConfig()


def test_the_default_template_spells_out_the_defaults() -> None:
    text = render_default_config("https://a.test", "http://a.test", "0.0.0.0:1", "0.0.0.0:2")
    raw = tomllib.loads(text)
    assert set(raw["limits"]) == {
        "max_connections",
        "max_headers",
        "max_header_bytes",
        "tls_handshake_seconds",
        "header_seconds",
        "body_seconds",
        "idle_seconds",
        "login_failures_per_address",
        "login_failures_overall",
        "login_window_seconds",
    }
    assert parse_config(raw).limits == LimitsConfig()


def test_limits_are_read() -> None:
    limits = parse_config(
        _config({"max_connections": 5, "header_seconds": 1.5, "login_window_seconds": 60})
    ).limits
    assert limits.max_connections == 5
    assert limits.header_timeout == 1.5
    assert limits.login_window == timedelta(seconds=60)


@pytest.mark.parametrize(
    "limits",
    [{"max_headers": 0}, {"body_seconds": -1}, {"max_connections": 2.5}, {"idle_seconds": "5"},
     {"max_header_bytes": True}, {"header_timeout": 5}],
)  # fmt: skip
def test_bad_limits_are_refused(limits: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="limits"):
        parse_config(_config(limits))
