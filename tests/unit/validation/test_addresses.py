"""Validation never reaches a non-public address, however it is written (issue 11, item 8).

An IPv6 address that embeds an IPv4 address is judged by the IPv4 address too: the host
(or a translator or tunnel relay on the way) reaches that IPv4 address. ``is_global`` alone
passed several of these forms.
"""

from __future__ import annotations

import ipaddress

import pytest

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.validation.addresses import check_reachable, embedded_ipv4


def refused(text: str) -> bool:
    try:
        check_reachable(ipaddress.ip_address(text), allow_private=False)
    except AcmeError as exc:
        assert exc.type is ProblemType.CONNECTION
        return True
    return False


# One form per row: (how it embeds, the address with a non-public IPv4, the embedded IPv4).
EMBEDDINGS = [
    ("IPv4-compatible ::/96 (RFC 4291 §2.5.5.1)", "::127.0.0.1", "127.0.0.1"),
    ("IPv4-compatible, private", "::10.1.2.3", "10.1.2.3"),
    ("IPv4-mapped ::ffff:0:0/96 (RFC 4291 §2.5.5.2)", "::ffff:127.0.0.1", "127.0.0.1"),
    ("IPv4-mapped, metadata", "::ffff:169.254.169.254", "169.254.169.254"),
    ("IPv4-translated ::ffff:0:0:0/96 (RFC 2765)", "::ffff:0:127.0.0.1", "127.0.0.1"),
    ("NAT64 64:ff9b::/96 (RFC 6052)", "64:ff9b::7f00:1", "127.0.0.1"),
    ("NAT64, private", "64:ff9b::192.168.1.1", "192.168.1.1"),
    ("NAT64, shared (RFC 6598)", "64:ff9b::100.64.0.1", "100.64.0.1"),
    ("6to4 2002::/16 (RFC 3056)", "2002:7f00:1::1", "127.0.0.1"),
    ("6to4, private", "2002:c0a8:101::", "192.168.1.1"),
    ("Teredo 2001::/32 server (RFC 4380)", "2001:0:7f00:1:0:0:f7f7:f7f7", "127.0.0.1"),
    ("Teredo client (obfuscated)", "2001:0:808:808:0:0:f5fe:fdfe", "10.1.2.1"),
    ("ISATAP interface id (RFC 5214)", "2606:4700::5efe:127.0.0.1", "127.0.0.1"),
    ("ISATAP, u bit set", "2606:4700::200:5efe:10.0.0.1", "10.0.0.1"),
]


@pytest.mark.parametrize(("form", "address", "ipv4"), EMBEDDINGS, ids=[e[0] for e in EMBEDDINGS])
def test_an_embedded_non_public_ipv4_is_refused(form: str, address: str, ipv4: str) -> None:
    assert ipaddress.IPv4Address(ipv4) in embedded_ipv4(ipaddress.IPv6Address(address)), form
    assert refused(address), form


def test_local_use_nat64_is_refused_whatever_it_embeds() -> None:
    """64:ff9b:1::/48 (RFC 8215) is local, and where its IPv4 sits depends on the prefix
    length the operator chose: it is never validated."""
    assert refused("64:ff9b:1::7f00:1")
    assert refused("64:ff9b:1::808:808")
    assert refused("64:ff9b:1:808:8:800::")


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2a00:1450::1"],
)
def test_public_addresses_pass(address: str) -> None:
    assert not refused(address)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fe80::1", "fd00::1"]
)
def test_plain_non_public_addresses_are_refused(address: str) -> None:
    assert refused(address)


def test_allow_private_allows_everything() -> None:
    for _form, address, _ in EMBEDDINGS:
        check_reachable(ipaddress.ip_address(address), allow_private=True)


def test_an_ordinary_ipv6_address_embeds_nothing() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700:4700::1111")) == []
