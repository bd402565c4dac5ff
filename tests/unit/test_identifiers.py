"""Identifier syntax: LDH labels only, matched over the whole string (issue 11, item 4)."""

from __future__ import annotations

import pytest

from acmefleet.identifiers import (
    IdentifierSyntaxError,
    normalise_dns_name,
    normalise_ip,
    parse_identifier,
)

# ``re``'s ``$`` matches before a trailing newline: each of these passed a ``^…$`` label check.
NEWLINE_NAMES = [
    "evil\n.example.com",
    "evil.example.com\n",
    "www.example\n.com",
    "*.evil\n.example.com",
]


@pytest.mark.parametrize("raw", NEWLINE_NAMES)
def test_a_newline_in_a_dns_name_is_refused(raw: str) -> None:
    with pytest.raises(IdentifierSyntaxError):
        parse_identifier("dns", raw)


@pytest.mark.parametrize(
    "raw",
    [
        "\u212aelvin.example.com",  # KELVIN SIGN: str.lower() makes it an ASCII "k"
        "bücher.example",  # a U-label: only A-labels are accepted
        "a\r.example.com",
        "a\t.example.com",
        "a_b.example.com",
        "a-.example.com",
        "*.example.com.",
        "x.*.example.com",
        "*",
        "*.com" + "\n",
        ("a" * 63 + ".") * 4 + "com",  # 259 characters
    ],
)
def test_only_ldh_labels(raw: str) -> None:
    with pytest.raises(IdentifierSyntaxError):
        normalise_dns_name(raw)


def test_good_names_and_a_labels() -> None:
    assert normalise_dns_name("xn--bcher-kva.example") == "xn--bcher-kva.example"
    assert normalise_dns_name("A-1.Example.COM") == "a-1.example.com"
    assert normalise_dns_name("*.example.com") == "*.example.com"
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert normalise_dns_name(longest) == longest  # 253 characters


def test_wildcard_only_where_allowed() -> None:
    with pytest.raises(IdentifierSyntaxError):
        normalise_dns_name("*.example.com", allow_wildcard=False)
    assert normalise_dns_name("www.example.com", allow_wildcard=False) == "www.example.com"


@pytest.mark.parametrize(
    "raw", ["2001:db8::1%x\n", "fe80::1%eth0", "192.0.2.1\n", " 192.0.2.1", "192.0.2.1/32"]
)
def test_ip_identifiers_have_no_zone_and_no_whitespace(raw: str) -> None:
    # An IPv6 zone ("%…") is any string to Python's ipaddress, a newline included.
    with pytest.raises(IdentifierSyntaxError):
        normalise_ip(raw)


def test_good_ip_identifiers() -> None:
    assert normalise_ip("2001:DB8:0::1") == "2001:db8::1"
    assert normalise_ip("::ffff:192.0.2.1") == "::ffff:c000:201"
    assert normalise_ip("192.0.2.1") == "192.0.2.1"
