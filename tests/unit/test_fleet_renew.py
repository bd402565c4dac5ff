"""``acmefleet renew``'s verdict on a host, and the unit it starts, without hosts."""

from __future__ import annotations

from datetime import UTC, datetime

from acmefleet.fleet import tls
from acmefleet.fleet.inventory import FleetHost
from acmefleet.fleet.renew import renew_now_unit, verdict

HOST = FleetHost(
    "web1", "10.0.0.5", "lego_nginx", ("*.web1.example.com", "web1.example.com"), "private", "org"
)


def served(serial: str | None, **changes: object) -> tls.ServedCertificate:
    base: dict[str, object] = {
        "host": "web1",
        "reachable": True,
        "verified": True,
        "problem": None,
        "names": ("web1.example.com", "*.web1.example.com"),
        "issuer": "CA",
        "serial": serial,
        "not_after": datetime(2027, 3, 1, tzinfo=UTC),
    }
    base.update(changes)
    return tls.ServedCertificate(**base)  # type: ignore[arg-type]


def test_the_unit_is_the_roles_name_for_the_first_name() -> None:
    # roles/renew_check: acmefleet-renew-now-<stack with dashes>-<first name, * as _>
    assert renew_now_unit(HOST) == "acmefleet-renew-now-lego-nginx-_.web1.example.com.service"


def test_verdicts() -> None:
    assert verdict(HOST, served("1a"), served("2b")) is None
    assert verdict(HOST, served("1a"), served("1a")) == (
        "still serves the certificate with serial 1a"
    )
    unverified = served("2b", verified=False, problem="certificate does not verify: expired")
    assert verdict(HOST, served("1a"), unverified) == (
        "verification: certificate does not verify: expired"
    )
    wrong = served("2b", names=("other.example.com",))
    assert verdict(HOST, served("1a"), wrong) == (
        "verification: serves other.example.com, not *.web1.example.com, web1.example.com"
    )
    nothing_before = served(None, reachable=False, verified=False)
    assert verdict(HOST, nothing_before, served("1a")) is None


def test_the_renew_check_is_named_as_the_role_names_it_and_can_be_off() -> None:
    assert HOST.renew_check_name == "lego-nginx-_.web1.example.com"
    assert HOST.has_renew_check
    for off in (False, "false", "no", " False "):
        host = FleetHost(
            "web2",
            "10.0.0.6",
            "certbot_apache",
            ("web2.example.com",),
            "private",
            "org",
            variables={"acmefleet_renew_check": off},
        )
        assert not host.has_renew_check, off
