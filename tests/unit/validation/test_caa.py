"""CAA's pure parts: the issue-value grammar (RFC 8659 §4.2), the decision over a relevant
RRset (issue/issuewild, critical tags, RFC 8657 parameters), the names a walk asks, the
endpoint setting, and which names finalize must check again."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acmefleet.config import ConfigError, parse_config, render_default_config
from acmefleet.validation.caa import (
    CaaRecord,
    MalformedValue,
    _parents,
    evaluate,
    parse_issue_value,
)

US = "acmefleet.test"
ACCOUNT = "https://acme.test/acme/public/acct/abc"


def record(value: str, tag: str = "issue", flags: int = 0) -> CaaRecord:
    return CaaRecord(flags, tag, value.encode())


def verdict(*records: CaaRecord, wildcard: bool = False, method: str = "http-01") -> str | None:
    return evaluate(
        records, wildcard=wildcard, account_uri=ACCOUNT, method=method, issuer_domains=[US]
    )


@pytest.mark.parametrize(
    ("value", "issuer", "parameters"),
    [
        ("acmefleet.test", US, {}),
        ("  AcmeFleet.Test  ", US, {}),
        (";", None, {}),
        ("", None, {}),
        ("acmefleet.test;", US, {}),
        ("acmefleet.test; accounturi=https://x/acct/1", US, {"accounturi": "https://x/acct/1"}),
        (
            "acmefleet.test;accounturi = a ;\tvalidationmethods=dns-01,http-01",
            US,
            {"accounturi": "a", "validationmethods": "dns-01,http-01"},
        ),
        ("; policy=ev", None, {"policy": "ev"}),
        ("acmefleet.test; Empty=", US, {"empty": ""}),
    ],
)
def test_issue_values_that_parse(
    value: str, issuer: str | None, parameters: dict[str, str]
) -> None:
    parsed = parse_issue_value(value.encode())
    assert (parsed.issuer, parsed.parameters) == (issuer, parameters)


@pytest.mark.parametrize(
    "value",
    [
        "acme fleet.test",
        "acmefleet.test.",  # no trailing dot in an issuer domain name
        "-acmefleet.test",
        "acmefleet.test; novalue",
        "acmefleet.test; a=b;",  # a ";" must be followed by a parameter
        "acmefleet.test; a=b c",
        "acmefleet.test; a=1; A=2",  # twice
        "acmefleet.test; =x",
        "acmefleet.tést",
    ],
)
def test_issue_values_that_do_not_parse(value: str) -> None:
    with pytest.raises(MalformedValue):
        parse_issue_value(value.encode("utf-8"))


def test_a_record_naming_us_allows_and_one_naming_another_ca_forbids() -> None:
    assert verdict(record(US)) is None
    reason = verdict(record("otherca.test"))
    assert reason is not None and '0 issue "otherca.test"' in reason
    # One record naming us among others is enough; tags and names match in any case.
    assert verdict(record("otherca.test"), CaaRecord(0, "issue", b"ACMEFLEET.TEST")) is None


def test_no_issuer_authorises_nobody() -> None:
    assert verdict(record(";")) is not None


def test_a_set_without_issue_properties_allows() -> None:
    assert verdict(record("mailto:caa@example.org", tag="iodef")) is None


def test_issuewild_decides_for_wildcards_and_only_for_them() -> None:
    ours_issue_other_wild = (record(US), record("otherca.test", tag="issuewild"))
    assert verdict(*ours_issue_other_wild, wildcard=True) is not None
    assert verdict(*ours_issue_other_wild, wildcard=False) is None
    other_issue_ours_wild = (record("otherca.test"), record(US, tag="issuewild"))
    assert verdict(*other_issue_ours_wild, wildcard=True) is None
    assert verdict(*other_issue_ours_wild, wildcard=False) is not None
    # No issuewild: issue decides for a wildcard too.
    assert verdict(record("otherca.test"), wildcard=True) is not None
    assert verdict(record(US), wildcard=True) is None
    # issuewild ";": no CA may issue wildcards, whatever issue says.
    assert verdict(record(US), record(";", tag="issuewild"), wildcard=True) is not None


def test_a_critical_unknown_tag_forbids_and_a_known_one_does_not() -> None:
    reason = verdict(record(US), record("x", tag="tbs", flags=128))
    assert reason is not None and "critical" in reason and '128 tbs "x"' in reason
    assert verdict(record(US), record("x", tag="tbs", flags=0)) is None
    assert verdict(record(US), record("mailto:a@b.example", tag="iodef", flags=128)) is None


def test_a_malformed_record_authorises_nobody_but_counts() -> None:
    assert verdict(record("acmefleet.test; broken")) is not None
    assert verdict(record("acmefleet.test; broken"), record(US)) is None


def test_accounturi() -> None:
    assert verdict(record(f"{US}; accounturi={ACCOUNT}")) is None
    assert verdict(record(f"{US}; accounturi={ACCOUNT}x")) is not None
    assert verdict(record(f"{US}; accounturi=https://other.test/acct/abc")) is not None


def test_validationmethods() -> None:
    assert verdict(record(f"{US}; validationmethods=dns-01,http-01")) is None
    assert verdict(record(f"{US}; validationmethods=dns-01")) is not None
    assert verdict(record(f"{US}; validationmethods=dns-01"), method="dns-01") is None
    # A label that is no label: the whole record authorises nobody.
    assert verdict(record(f"{US}; validationmethods=http-01,,dns-01")) is not None
    assert verdict(record(f"{US}; validationmethods=ca-manual"), method="ca-manual") is None


def test_unknown_parameters_are_ignored() -> None:
    assert verdict(record(f"{US}; policy=ev; accounturi={ACCOUNT}")) is None


def test_the_walk_asks_the_name_then_each_parent_but_not_the_root() -> None:
    assert _parents("www.sub.example.org") == [
        "www.sub.example.org",
        "sub.example.org",
        "example.org",
        "org",
    ]
    assert _parents("example.org.") == ["example.org", "org"]


def test_a_long_detail_quotes_a_few_records() -> None:
    reason = verdict(*[record(f"ca{i}.test") for i in range(10)])
    assert reason is not None and "(and 6 more)" in reason


# ------------------------------------------------------------------ the endpoint setting


def _config(**endpoint: Any) -> dict[str, Any]:
    return {
        "server": {"base_url": "https://acme.example.net:8443", "pki_base_url": "http://x.test"},
        "endpoints": [
            {"name": "public", "type": "public", "ca": "public", "profiles": ["public-dv"]}
            | endpoint,
            {"name": "private", "type": "private", "ca": "private", "profiles": ["p"]},
        ],
    }


def test_caa_identities_default_to_the_base_url_host() -> None:
    config = parse_config(_config())
    assert config.endpoints["public"].caa_identities == ("acme.example.net",)
    assert config.endpoints["private"].caa_identities == ()


def test_caa_identities_are_issuer_domain_names() -> None:
    config = parse_config(_config(caa_identities=["CA.Example.net", "ca.example.net", "b.test"]))
    assert config.endpoints["public"].caa_identities == ("ca.example.net", "b.test")
    for wrong in ([], ["ca.example.net."], ["two words"], "ca.example.net", [3]):
        with pytest.raises(ConfigError, match="caa_identities"):
            parse_config(_config(caa_identities=wrong))


def test_a_private_endpoint_takes_no_caa_identities() -> None:
    raw = _config()
    raw["endpoints"][1]["caa_identities"] = ["ca.example.net"]
    with pytest.raises(ConfigError, match="checks no CAA"):
        parse_config(raw)


def test_an_address_base_url_needs_caa_identities() -> None:
    raw = _config()
    raw["server"]["base_url"] = "https://[2001:db8::1]"
    with pytest.raises(ConfigError, match="set 'caa_identities'"):
        parse_config(raw)


def test_the_default_configuration_names_the_base_url_host() -> None:
    text = render_default_config(
        "https://acme.example.net", "http://pki.example.net", "127.0.0.1:1", "127.0.0.1:2"
    )
    config = parse_config(tomllib.loads(text))
    assert config.endpoints["public"].caa_identities == ("acme.example.net",)
    # An IPv6 address as base URL: the template carries a placeholder to change.
    text = render_default_config(
        "https://[::1]:8555", "http://pki.example.net", "127.0.0.1:1", "127.0.0.1:2"
    )
    assert 'caa_identities = ["acme.example.com"]' in text


# ------------------------------------------------------------------ which names are due


def test_due_names_are_the_never_and_the_long_ago_checked() -> None:
    from acmefleet.config import EndpointConfig
    from acmefleet.identifiers import Identifier
    from acmefleet.models import Authorization, Challenge, Order
    from acmefleet.policy.caa import due

    now = datetime(2026, 12, 5, 12, tzinfo=UTC)

    def authz(name: str, checked: datetime | None) -> Authorization:
        challenge = Challenge(f"c-{name}", f"a-{name}", "dns-01", "t", "valid", now, None)
        return Authorization(
            f"a-{name}",
            "acct",
            Identifier("dns", name),
            False,
            "valid",
            now + timedelta(days=1),
            (challenge,),
            caa_checked_at=checked,
        )

    order = Order(
        "o",
        "acct",
        "public-dv",
        (),
        now + timedelta(days=1),
        None,
        None,
        "none",
        None,
        None,
        (
            authz("never.example", None),
            authz("old.example", now - timedelta(hours=8)),
            authz("recent.example", now - timedelta(hours=7, minutes=59)),
        ),
    )
    public = EndpointConfig("public", "public", "public", ("public-dv",), "public-dv")
    private = EndpointConfig("private", "private", "private", ("p",), "p")
    # No database needed: every authorization here was proven by a challenge.
    conn: Any = None
    found = due(conn, public, None, order, now)  # type: ignore[arg-type]
    assert [(d.name, d.method) for d in found] == [
        ("never.example", "dns-01"),
        ("old.example", "dns-01"),
    ]
    assert due(conn, private, None, order, now) == []  # type: ignore[arg-type]
