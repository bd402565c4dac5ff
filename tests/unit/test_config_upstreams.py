"""The [upstreams.NAME] tables of config.toml (acmefleet/config.py): a full table, the
defaults, and each refusal with the message that names what is wrong."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from acmefleet.config import ConfigError, Rfc2136Config, UpstreamConfig, parse_config

FULL = """
[server]
base_url = "https://acme.test"
pki_base_url = "http://acme.test"

[[endpoints]]
name = "p"
type = "private"
ca = "private"
profiles = ["x"]

[[endpoints]]
name = "public"
type = "public"
ca = "relay"
profiles = ["tls"]
upstream = "sectigo-ov"

[upstreams.sectigo-ov]
directory_url = "https://acme.sectigo.test/v2/OV"
ca_bundle = "upstream-ca.pem"
account_key = "/etc/acmefleet/sectigo.key"
eab_kid = "kid-1"
eab_hmac_key_file = "sectigo.hmac"
contact = ["mailto:pki@example.org", "mailto:noc@example.org"]
profile = "tlsserver"
timeout_seconds = 20
retry_for_seconds = 7200

[upstreams.sectigo-ov.dns01]
server = "192.0.2.53"
port = 5353
key_name = "acme-update.example.org."
algorithm = "HMAC-SHA512"
secret_file = "tsig.secret"
zone = "example.org"

[upstreams.le]
directory_url = "https://acme-v02.api.letsencrypt.test/directory"
"""

DIRECTORY = "https://ca.test/directory"


def _config(upstreams: Any, **endpoint: Any) -> dict[str, Any]:
    first = {"name": "p", "type": "private", "ca": "private", "profiles": ["x"], **endpoint}
    return {
        "server": {"base_url": "https://acme.test", "pki_base_url": "http://acme.test"},
        "endpoints": [first],
        "upstreams": upstreams,
    }


def _one(**table: Any) -> dict[str, Any]:
    """A config with one upstream ``ca`` holding ``table`` (a directory URL unless given)."""
    return _config({"ca": {"directory_url": DIRECTORY, **table}})


def _dns01(**changes: Any) -> dict[str, Any]:
    table = {"server": "192.0.2.53", "key_name": "acme-update.", "secret_file": "tsig.secret"}
    table.update(changes)
    return {k: v for k, v in table.items() if v is not None}


def _refused(raw: dict[str, Any], message: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert str(caught.value) == message
    return str(caught.value)


def test_a_full_table_is_read_whole() -> None:
    config = parse_config(tomllib.loads(FULL))
    assert sorted(config.upstreams) == ["le", "sectigo-ov"]
    assert config.upstreams["sectigo-ov"] == UpstreamConfig(
        name="sectigo-ov",
        directory_url="https://acme.sectigo.test/v2/OV",
        ca_bundle=Path("upstream-ca.pem"),
        account_key=Path("/etc/acmefleet/sectigo.key"),
        eab_kid="kid-1",
        eab_hmac_key_file=Path("sectigo.hmac"),
        eab_hmac_key_env=None,
        contact=("mailto:pki@example.org", "mailto:noc@example.org"),
        profile="tlsserver",
        timeout=20.0,
        retry_for=timedelta(hours=2),
        dns01=Rfc2136Config(
            server="192.0.2.53",
            port=5353,
            key_name="acme-update.example.org.",
            algorithm="hmac-sha512",
            secret_file=Path("tsig.secret"),
            zone="example.org",
        ),
    )
    assert config.endpoints["public"].upstream == "sectigo-ov"
    assert config.endpoints["p"].upstream is None


def test_a_bare_table_takes_the_defaults() -> None:
    upstream = parse_config(tomllib.loads(FULL)).upstreams["le"]
    assert upstream == UpstreamConfig(
        name="le", directory_url="https://acme-v02.api.letsencrypt.test/directory"
    )
    assert upstream.timeout == 30.0 and upstream.retry_for == timedelta(hours=1)
    assert upstream.contact == () and upstream.dns01 is None and upstream.eab_kid is None


def test_without_upstreams_there_are_none() -> None:
    raw = _config({})
    del raw["upstreams"]
    assert parse_config(raw).upstreams == {}


def test_the_key_may_come_from_the_environment_and_dns01_has_defaults() -> None:
    upstream = parse_config(
        _one(eab_kid="k", eab_hmac_key_env="ZEROSSL_EAB_HMAC", dns01=_dns01())
    ).upstreams["ca"]
    assert upstream.eab_hmac_key_env == "ZEROSSL_EAB_HMAC" and upstream.eab_hmac_key_file is None
    assert upstream.dns01 == Rfc2136Config(
        "192.0.2.53", 53, "acme-update.", "hmac-sha256", Path("tsig.secret"), None
    )
    ipv6 = parse_config(_one(dns01=_dns01(server="2001:db8::53"))).upstreams["ca"]
    assert ipv6.dns01 is not None and ipv6.dns01.server == "2001:db8::53"


# ---------------------------------------------------------------------- refusals


def test_an_unknown_setting_is_named() -> None:
    _refused(
        _one(eab_hmac_key="c2VjcmV0", timeout=5),
        "upstreams.ca: unknown setting(s) ['eab_hmac_key', 'timeout']",
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://ca.test/directory",
        "ftp://ca.test/directory",
        "https:///directory",
        "https://user:pw@ca.test/directory",
        "https://@ca.test/directory",
        "ca.test/directory",
        "",
    ],
)
def test_a_directory_url_that_is_not_https_to_a_host_is_refused(url: str) -> None:
    _refused(
        _config({"ca": {"directory_url": url}}),
        "upstreams.ca: 'directory_url' must be an https://HOST[:PORT]/… URL",
    )


def test_a_table_without_a_directory_url_is_refused() -> None:
    _refused(_config({"ca": {"profile": "x"}}), "upstreams.ca: missing 'directory_url'")
    _refused(_config({"ca": {"directory_url": 5}}), "upstreams.ca: 'directory_url' must be a str")


EAB_ONE_OF = (
    "upstreams.ca: with 'eab_kid', give the HMAC key in 'eab_hmac_key_file' (0600) "
    "or 'eab_hmac_key_env', one of them (never in this file)"
)


def test_an_eab_kid_without_a_key_source_is_refused() -> None:
    _refused(_one(eab_kid="kid-1"), EAB_ONE_OF)


def test_an_eab_kid_with_both_key_sources_is_refused() -> None:
    _refused(_one(eab_kid="kid-1", eab_hmac_key_file="f", eab_hmac_key_env="E"), EAB_ONE_OF)


@pytest.mark.parametrize("source", ["eab_hmac_key_file", "eab_hmac_key_env"])
def test_a_key_without_its_kid_is_refused(source: str) -> None:
    _refused(_one(**{source: "HMAC"}), "upstreams.ca: an EAB HMAC key needs its 'eab_kid'")


@pytest.mark.parametrize("name", ["zerossl_hmac", "1HMAC", "HMAC-KEY", "HMAC KEY", "A" * 129])
def test_a_bad_environment_variable_name_is_refused(name: str) -> None:
    _refused(
        _one(eab_kid="kid-1", eab_hmac_key_env=name),
        "upstreams.ca: 'eab_hmac_key_env' must name an environment variable",
    )


@pytest.mark.parametrize("key", ["eab_kid", "eab_hmac_key_file", "profile", "ca_bundle"])
@pytest.mark.parametrize("value", ["", "   ", 5, ["x"]])
def test_an_empty_or_non_string_optional_setting_is_refused(key: str, value: Any) -> None:
    _refused(_one(**{key: value}), f"upstreams.ca: '{key}' must be a non-empty string")


@pytest.mark.parametrize(
    "contact",
    [
        ["pki@example.org"],
        ["https://example.org/contact"],
        ["mailto:a@example.org,b@example.org"],
        "mailto:pki@example.org",
        [5],
    ],
)
def test_a_contact_that_is_not_a_list_of_mailto_urls_is_refused(contact: Any) -> None:
    _refused(_one(contact=contact), "upstreams.ca: 'contact' must be a list of mailto: URLs")


@pytest.mark.parametrize("timeout", [0, 0.5, 301, -1, True, "30", float("nan"), float("inf")])
def test_a_timeout_out_of_range_is_refused(timeout: Any) -> None:
    _refused(
        _one(timeout_seconds=timeout),
        "upstreams.ca: 'timeout_seconds' must be a number in [1, 300]",
    )


@pytest.mark.parametrize("timeout", [1, 300, 2.5])
def test_a_timeout_in_range_is_taken(timeout: float) -> None:
    assert parse_config(_one(timeout_seconds=timeout)).upstreams["ca"].timeout == timeout


@pytest.mark.parametrize("retry_for", [59, 7 * 86400 + 1, False, "3600"])
def test_a_retry_period_out_of_range_is_refused(retry_for: Any) -> None:
    _refused(
        _one(retry_for_seconds=retry_for),
        "upstreams.ca: 'retry_for_seconds' must be a number in [60, 604800]",
    )


@pytest.mark.parametrize("server", ["ns1.example.org", "192.0.2.300", "192.0.2.53:53", ""])
def test_a_dns01_server_that_is_not_an_ip_address_is_refused(server: str) -> None:
    _refused(
        _one(dns01=_dns01(server=server)),
        f"upstreams.ca.dns01: 'server' must be an IP address, not {server!r}",
    )


@pytest.mark.parametrize("algorithm", ["hmac-md5", "hmac-sha1", "sha256", 256])
def test_a_tsig_algorithm_not_offered_is_refused(algorithm: Any) -> None:
    _refused(
        _one(dns01=_dns01(algorithm=algorithm)),
        "upstreams.ca.dns01: 'algorithm' must be one of "
        "['hmac-sha256', 'hmac-sha384', 'hmac-sha512']",
    )


@pytest.mark.parametrize("port", [0, 65536, -53, True, "53", 53.0])
def test_a_dns01_port_that_is_not_a_port_number_is_refused(port: Any) -> None:
    _refused(_one(dns01=_dns01(port=port)), "upstreams.ca.dns01: 'port' must be a port number")


def test_an_unknown_dns01_setting_is_named() -> None:
    _refused(
        _one(dns01=_dns01(secret="c2VjcmV0", ttl=60)),
        "upstreams.ca.dns01: unknown setting(s) ['secret', 'ttl']",
    )


def test_dns01_needs_its_server_key_and_secret() -> None:
    _refused(_one(dns01=_dns01(server=None)), "upstreams.ca.dns01: missing 'server'")
    _refused(_one(dns01=_dns01(key_name=None)), "upstreams.ca.dns01: missing 'key_name'")
    _refused(_one(dns01=_dns01(secret_file=None)), "upstreams.ca.dns01: missing 'secret_file'")
    _refused(_one(dns01="192.0.2.53"), "upstreams.ca.dns01 must be a table")


@pytest.mark.parametrize("key_name", ["acme update", "acme..update", "-acme", "acme-.org", "a/b"])
def test_a_tsig_key_name_that_is_no_dns_name_is_refused(key_name: str) -> None:
    _refused(
        _one(dns01=_dns01(key_name=key_name)),
        "upstreams.ca.dns01: 'key_name' must be the TSIG key's DNS name",
    )


def test_a_zone_that_is_no_dns_name_is_refused() -> None:
    _refused(
        _one(dns01=_dns01(zone="example..org")), "upstreams.ca.dns01: 'zone' must be a DNS name"
    )


@pytest.mark.parametrize(
    "name", ["Sectigo", "-ca", "_ca", "ca.test", "ca ov", "", "a" * 24, "ca\n"]
)
def test_a_bad_upstream_name_is_refused(name: str) -> None:
    _refused(
        _config({name: {"directory_url": DIRECTORY}}),
        f"upstreams.{name}: a name is lower-case letters, digits, '-' or '_'",
    )


def test_a_name_of_23_characters_is_the_longest_taken() -> None:
    name = "a" * 23
    assert list(parse_config(_config({name: {"directory_url": DIRECTORY}})).upstreams) == [name]


def test_upstreams_and_each_upstream_must_be_tables() -> None:
    _refused(_config([DIRECTORY]), "[upstreams] must be a table of named upstream CAs")
    _refused(_config({"ca": DIRECTORY}), "upstreams.ca must be a table")


def test_an_endpoint_relaying_to_an_unconfigured_upstream_is_refused() -> None:
    raw = tomllib.loads(FULL)
    del raw["upstreams"]["sectigo-ov"]
    _refused(raw, "endpoint public: no [upstreams.sectigo-ov] configured")


def test_only_a_public_endpoint_relays() -> None:
    _refused(
        _one()
        | {
            "endpoints": [
                {
                    "name": "p",
                    "type": "private",
                    "ca": "private",
                    "profiles": ["x"],
                    "upstream": "ca",
                }
            ]
        },
        "endpoints[0]: only a public endpoint relays to an upstream CA",
    )


# ---------------------------------------------------------------------- found wanting


def test_a_long_key_name_with_a_typo_is_refused_at_once() -> None:
    # In a child, so that the hang is bounded by its timeout and not by the suite's.
    program = (
        "from acmefleet.config import ConfigError, parse_config\n"
        "import sys\n"
        f"raw = {_one(dns01=_dns01(key_name='acmefleet-upstream-update-key.example.org '))!r}\n"
        "try:\n    parse_config(raw)\nexcept ConfigError as exc:\n    print(exc)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", program],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parents[2],
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("parse_config did not finish within 5 s") from None
    assert "'key_name' must be the TSIG key's DNS name" in done.stdout, done.stderr


def test_a_key_name_with_a_label_longer_than_63_is_refused() -> None:
    with pytest.raises(ConfigError, match="'key_name' must be the TSIG key's DNS name"):
        parse_config(_one(dns01=_dns01(key_name="a" * 64 + ".example.org")))


def test_a_directory_url_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=re.escape("upstreams.ca: 'directory_url'")):
        parse_config(_config({"ca": {"directory_url": "https://[::1/directory"}}))


@pytest.mark.parametrize("url", ["https://ca.test:99999/directory", "https://ca.test:abc/d"])
def test_a_directory_url_with_a_bad_port_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="directory_url"):
        parse_config(_config({"ca": {"directory_url": url}}))
