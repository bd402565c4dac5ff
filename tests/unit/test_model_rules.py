"""Derived statuses, identifiers, nonces, coverage and contacts: pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine

from acmefleet.acme.nonces import NonceService
from acmefleet.clock import FixedClock
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier, IdentifierSyntaxError, parse_identifier
from acmefleet.models import Authorization, Challenge, Order, OrgDomain
from acmefleet.policy.contacts import check_contacts
from acmefleet.policy.names import covering_domain, validated_domain
from acmefleet.store.schema import metadata

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def authz(status: str, expires: datetime = NOW + timedelta(days=1)) -> Authorization:
    return Authorization(
        "a",
        "acct",
        Identifier("dns", "a.example.com"),
        False,
        status,  # type: ignore[arg-type]
        expires,
        (Challenge("c", "a", "http-01", "t", "pending", None, None),),
    )


def order(
    *authzs: Authorization, finalization: str = "none", expires: datetime = NOW + timedelta(days=1)
) -> Order:
    return Order(
        "o",
        "acct",
        "p",
        (Identifier("dns", "a.example.com"),),
        expires,
        None,
        None,
        finalization,
        None,
        None,
        authzs,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("authz_states", "finalization", "expected"),
    [
        (["valid", "valid"], "none", "ready"),
        (["valid", "pending"], "none", "pending"),
        (["valid", "invalid"], "none", "invalid"),
        (["deactivated"], "none", "invalid"),
        (["valid"], "processing", "processing"),
        (["valid"], "valid", "valid"),
    ],
)
def test_order_status_is_derived(authz_states: list[str], finalization: str, expected: str) -> None:
    assert (
        order(*(authz(s) for s in authz_states), finalization=finalization).status(NOW) == expected
    )


def test_expiry_makes_authorizations_and_orders_invalid() -> None:
    stale = authz("valid", expires=NOW - timedelta(seconds=1))
    assert stale.status(NOW) == "expired"
    assert order(stale).status(NOW) == "invalid"
    assert order(authz("valid"), expires=NOW).status(NOW) == "invalid"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "a",
        "-a.example.com",
        "a..example.com",
        "example.com.",
        "*.*.example.com",
        "ex ample.com",
        "a.123",
        "x" * 64 + ".com",
    ],
)
def test_bad_dns_names(raw: str) -> None:
    with pytest.raises(IdentifierSyntaxError):
        parse_identifier("dns", raw)


def test_identifiers_are_normalised() -> None:
    assert parse_identifier("dns", "WWW.Example.COM").value == "www.example.com"
    assert parse_identifier("dns", "*.example.com").is_wildcard
    assert parse_identifier("ip", "2001:db8:0::1").value == "2001:db8::1"


def test_nonces_are_single_use_and_expire() -> None:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    clock = FixedClock(NOW)
    service = NonceService(b"k" * 32, clock, timedelta(minutes=5))
    nonce = service.mint()
    with engine.begin() as conn:
        service.redeem(conn, nonce)
    with engine.begin() as conn, pytest.raises(AcmeError) as reused:
        service.redeem(conn, nonce)
    assert reused.value.type is ProblemType.BAD_NONCE
    with pytest.raises(AcmeError):
        NonceService(b"x" * 32, clock, timedelta(minutes=5)).check(service.mint())
    later = service.mint()
    clock.advance(timedelta(minutes=6))
    with pytest.raises(AcmeError, match="expired"):
        service.check(later)
    with engine.begin() as conn:
        assert service.prune(conn) == 1


def domain(name: str, kind: str = "dns", validated_until: datetime | None = None) -> OrgDomain:
    return OrgDomain(1, 1, name, kind, None, validated_until, None, None)  # type: ignore[arg-type]


def test_domain_coverage() -> None:
    domains = [domain("example.com"), domain("10.0.0.0/8", "ip")]
    assert covering_domain(domains, Identifier("dns", "a.b.example.com"))
    assert covering_domain(domains, Identifier("dns", "*.example.com"))
    assert covering_domain(domains, Identifier("dns", "badexample.com")) is None
    assert covering_domain(domains, Identifier("ip", "10.1.2.3"))
    assert covering_domain(domains, Identifier("ip", "11.1.2.3")) is None
    validated = [domain("example.com", validated_until=NOW)]
    assert validated_domain(validated, Identifier("dns", "example.com"), NOW) is None


def test_a_nonce_is_redeemed_once_whatever_its_spelling() -> None:
    """RFC 8555 §6.1: padded base64url is improperly encoded. The lenient decoder took six
    spellings of one nonce, and the ledger (keyed by the string) redeemed each once."""
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    service = NonceService(b"k" * 32, FixedClock(NOW), timedelta(minutes=5))
    nonce = service.mint()
    redeemed = []
    for spelling in (nonce, nonce + "=", nonce + "==", nonce + "\n", nonce + "=\n", nonce + "==\n"):
        try:
            with engine.begin() as conn:
                service.redeem(conn, spelling)
        except AcmeError as exc:
            assert exc.type is ProblemType.BAD_NONCE
        else:
            redeemed.append(spelling)
    assert redeemed == [nonce]


def test_contacts() -> None:
    assert check_contacts(["mailto:ops@example.com"]) == ["mailto:ops@example.com"]
    for bad, kind in (
        (["tel:1"], ProblemType.UNSUPPORTED_CONTACT),
        (["mailto:a@b"], ProblemType.INVALID_CONTACT),
        (["mailto:a@b.com?subject=x"], ProblemType.INVALID_CONTACT),
        (["mailto:a@b.com\n"], ProblemType.INVALID_CONTACT),  # "$" matched before the newline
        ("mailto:a@b.com", ProblemType.MALFORMED),
    ):
        with pytest.raises(AcmeError) as caught:
            check_contacts(bad)
        assert caught.value.type is kind
