"""dns-01's pure parts: the TXT value, where it sits, and the resolver setting."""

from __future__ import annotations

import base64
import hashlib
import tomllib
from typing import Any

import pytest

from acmefleet.config import ConfigError, parse_config, parse_resolver, render_default_config
from acmefleet.identifiers import Identifier
from acmefleet.validation.dns01 import record_name, txt_value

# RFC 8555 §8.1's example: token and thumbprint as printed there.
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
THUMBPRINT = "nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"


def test_txt_value_is_base64url_sha256_without_padding() -> None:
    key_authorization = f"{TOKEN}.{THUMBPRINT}"
    digest = hashlib.sha256(key_authorization.encode()).digest()
    value = txt_value(key_authorization)
    assert len(value) == 43 and "=" not in value
    assert base64.urlsafe_b64decode(value + "=") == digest


def test_record_name_drops_a_wildcard() -> None:
    assert record_name(Identifier("dns", "www.example.org")) == "_acme-challenge.www.example.org"
    # RFC 8555 §8.4: an authorization for "*.example.org" is validated at the base name.
    assert record_name(Identifier("dns", "*.example.org")) == "_acme-challenge.example.org"
    assert record_name(Identifier("dns", "example.org")) == "_acme-challenge.example.org"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("127.0.0.53:5353", ("127.0.0.53", 5353)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
        ("[::1]", ("::1", 53)),
    ],
)
def test_resolvers_are_addresses_with_optional_ports(text: str, parsed: tuple[str, int]) -> None:
    assert parse_resolver(text) == parsed


@pytest.mark.parametrize(
    "text", ["dns.example", "192.0.2.53:0", "192.0.2.53:70000", "[::1", "[::1]x", 53, "1.2.3.4:x"]
)
def test_bad_resolvers_are_refused(text: Any) -> None:
    with pytest.raises(ConfigError, match="dns_resolvers"):
        parse_resolver(text)


def _config(**validation: Any) -> dict[str, Any]:
    return {
        "server": {"base_url": "https://acme.test", "pki_base_url": "http://acme.test"},
        "endpoints": [
            {"name": "p", "type": "private", "ca": "private", "profiles": ["x"]},
            {"name": "q", "type": "public", "ca": "public", "profiles": ["y"]},
        ],
        "validation": validation,
    }


def test_validation_settings_and_their_defaults() -> None:
    default = parse_config(_config()).validation
    assert default.dns_resolvers == () and default.tls_alpn01_port == 443
    chosen = parse_config(
        _config(dns_resolvers=["127.0.0.1:5353", "::1"], tls_alpn01_port=8443)
    ).validation
    assert chosen.dns_resolvers == (("127.0.0.1", 5353), ("::1", 53))
    assert chosen.tls_alpn01_port == 8443
    with pytest.raises(ConfigError, match="must be a list"):
        parse_config(_config(dns_resolvers="127.0.0.1"))


def test_the_template_names_the_new_settings() -> None:
    text = render_default_config("https://a.test", "http://a.test", "0.0.0.0:1", "0.0.0.0:2")
    config = parse_config(tomllib.loads(text))
    assert config.validation.dns_resolvers == () and config.validation.tls_alpn01_port == 443
    assert config.endpoints["public"].challenges == ("http-01", "dns-01", "tls-alpn-01")
    assert config.endpoints["private"].challenges == ()


def test_endpoint_challenges() -> None:
    raw = _config()
    assert parse_config(raw).endpoints["q"].challenges == ("http-01", "dns-01", "tls-alpn-01")
    raw["endpoints"][1]["challenges"] = ["dns-01"]
    assert parse_config(raw).endpoints["q"].challenges == ("dns-01",)
    raw["endpoints"][1]["challenges"] = ["dns-01", "email-reply-00"]
    with pytest.raises(ConfigError, match="'challenges'"):
        parse_config(raw)
    raw["endpoints"][1]["challenges"] = []
    raw["endpoints"][0]["challenges"] = ["http-01"]
    with pytest.raises(ConfigError, match="private endpoint"):
        parse_config(raw)
