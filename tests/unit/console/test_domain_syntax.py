"""The console's domain syntax (issue 11, item 4): the API, the CLI and the web page all
store what ``organisations.parse_domain`` returns, so a bad name is refused here once."""

from __future__ import annotations

import pytest

from acmefleet.console.errors import ConsoleError
from acmefleet.console.organisations import parse_domain


@pytest.mark.parametrize(
    "raw",
    [
        "evil\n.example.com",
        "shop.example.com\n.evil.org",
        "evil.example\n.com",
        "2001:db8::%x\n/64",  # an IPv6 zone is any string to ipaddress, a newline included
        "2001:db8::%eth0/64",
        "10.0.0.0\n/8",
        "\u212aelvin.example.com",  # the Kelvin sign lower-cases to an ASCII "k"
        "*.example.com",
        "a_b.example.com",
    ],
)
def test_bad_domains_are_refused(raw: str) -> None:
    with pytest.raises(ConsoleError):
        parse_domain(raw)


def test_good_domains() -> None:
    assert parse_domain("  Shop.Example.COM ") == ("shop.example.com", "dns")
    assert parse_domain("xn--bcher-kva.example") == ("xn--bcher-kva.example", "dns")
    assert parse_domain("192.0.2.77/24") == ("192.0.2.0/24", "ip")
    assert parse_domain("2001:DB8::/32") == ("2001:db8::/32", "ip")
    assert parse_domain("192.0.2.7") == ("192.0.2.7/32", "ip")
