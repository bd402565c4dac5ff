"""The database settings of config.toml: the URL, [database], the rendered template."""

from __future__ import annotations

import math
import tomllib
from typing import Any

import pytest

from acmefleet.config import ConfigError, DatabaseConfig, parse_config, render_default_config


def _config(url: str | None = None, database: dict[str, Any] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "server": {"base_url": "https://acme.test", "pki_base_url": "http://acme.test"},
        "endpoints": [{"name": "p", "type": "private", "ca": "private", "profiles": ["x"]}],
    }
    if url is not None:
        raw["server"]["database_url"] = url
    if database is not None:
        raw["database"] = database
    return raw


def test_sqlite_in_the_data_directory_unless_a_url_is_given() -> None:
    config = parse_config(_config())
    assert config.database == DatabaseConfig()
    assert config.database_url is None and config.database.dialect == "sqlite"


def test_a_plain_postgresql_url_gets_the_shipped_driver() -> None:
    config = parse_config(_config("postgresql://acmefleet@db.test/acmefleet?passfile=/p"))
    assert config.database_url == "postgresql+psycopg://acmefleet@db.test/acmefleet?passfile=/p"
    assert config.database.dialect == "postgresql"


@pytest.mark.parametrize(
    "url", ["mysql://db.test/a", "postgresql+psycopg2://db.test/a", "", "db.test", 5]
)
def test_other_urls_are_refused(url: Any) -> None:
    with pytest.raises(ConfigError, match="database_url"):
        parse_config(_config(url))


def test_the_template_spells_out_the_defaults_and_renders_a_url_safely() -> None:
    url = 'postgresql+psycopg://u@db.test/a?passfile=/x"y\\z'
    text = render_default_config("https://a.test", "http://a.test", "0.0.0.0:1", "0.0.0.0:2")
    raw = tomllib.loads(text)
    assert set(raw["database"]) == {
        "pool_size",
        "max_overflow",
        "pool_timeout_seconds",
        "connect_timeout_seconds",
        "statement_timeout_seconds",
    }
    assert parse_config(raw).database == DatabaseConfig()
    rendered = tomllib.loads(
        render_default_config(
            "https://a.test", "http://a.test", "0.0.0.0:1", "0.0.0.0:2", database_url=url
        )
    )
    assert rendered["server"]["database_url"] == url


def test_database_settings_are_read() -> None:
    database = parse_config(
        _config(database={"pool_size": 2, "max_overflow": 0, "statement_timeout_seconds": 2.5})
    ).database
    assert (database.pool_size, database.max_overflow) == (2, 0)
    assert database.statement_timeout == 2.5


@pytest.mark.parametrize(
    "database",
    [{"pool_size": 0}, {"max_overflow": -1}, {"pool_size": 2.5}, {"pool_timeout_seconds": "5"},
     {"pool_size": True}, {"statement_timeout_seconds": math.nan},
     {"statement_timeout_seconds": math.inf}, {"connect_timeout_seconds": 10**9},
     {"pool": 5}],
)  # fmt: skip
def test_bad_database_settings_are_refused(database: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="database"):
        parse_config(_config(database=database))
