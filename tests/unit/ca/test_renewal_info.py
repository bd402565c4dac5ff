"""RFC 9773 certIDs and the default renewal windows, without a server."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from acmefleet.ca.hierarchy import Authority
from acmefleet.ca.issuer import EmbeddedIssuer, IssueRequest
from acmefleet.ca.profiles import DEFAULT_PROFILES
from acmefleet.ca.renewal_info import (
    UPSTREAM_WINDOW,
    CertIdError,
    Suggestion,
    Window,
    cert_id_of,
    default_window,
    parse_cert_id,
    serial_octets,
    served_upstream_window,
    suggest,
)

NB = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
NINETY_DAYS = timedelta(days=90) - timedelta(seconds=1)


def test_rfc_9773_example() -> None:
    """§4.1's worked example: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:
    DE:01:C8:D4 and serial 00:87:65:43:21 give aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE."""
    parsed = parse_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert parsed.key_identifier.hex() == "69885b6b87464041e1b37b847ba0ae2cde01c8d4"
    assert parsed.serial == 0x87654321
    assert parsed.serial_hex == "87654321"
    assert str(parsed) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_serial_octets_keep_der_sign() -> None:
    assert serial_octets(0x7F) == b"\x7f"
    assert serial_octets(0x80) == b"\x00\x80"
    assert serial_octets(0x0100) == b"\x01\x00"
    with pytest.raises(CertIdError):
        serial_octets(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ",
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.",
        ".AIdlQyE",
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE.AIdlQyE",
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ=.AIdlQyE",
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyF",  # stray bits in the last character
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.gA",  # 0x80: negative
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AAE",  # 00 01: not DER's shortest form
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AA",  # zero
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ." + "AQEB" * 8,  # 24 octets: over RFC 5280's 20
        "QUFB" * 30 + ".AIdlQyE",  # a 90-octet key identifier
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AId lQyE",
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE\n",
    ],
)
def test_malformed_cert_ids(text: str) -> None:
    with pytest.raises(CertIdError):
        parse_cert_id(text)


def test_cert_id_of_an_issued_leaf(private_issuer: EmbeddedIssuer, private_ca: Authority) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    issued = private_issuer.issue(
        IssueRequest(key, ("host.example.com",), (), DEFAULT_PROFILES["private-server"])
    )
    leaf = x509.load_der_x509_certificate(issued.leaf_der)
    found = cert_id_of(leaf)
    ski = private_ca.issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert found.key_identifier == ski.value.digest
    assert found.serial_hex == issued.serial_hex
    assert parse_cert_id(str(found)) == found


def test_windows_of_a_fleet_issued_in_one_minute_are_spread() -> None:
    """10,000 certificates issued in the same minute: their windows start all over
    [60 %, 70 %) of the validity, evenly (20 bins each within ±20 % of the mean), and no
    minute holds more than a uniform spread would put there."""
    rng = random.Random(9773)
    starts = []
    for _ in range(10_000):
        serial = rng.getrandbits(159) | 1 << 152
        not_before = NB + timedelta(seconds=rng.randrange(60))
        window = default_window(serial, not_before, not_before + NINETY_DAYS)
        starts.append(window.start)
        assert window.end - window.start == timedelta(days=4, hours=12)
    earliest, latest = NB + timedelta(days=54), NB + timedelta(days=63, minutes=1)
    assert all(earliest <= s < latest for s in starts)
    spread = (latest - earliest) / 20
    bins = Counter(int((s - earliest) / spread) for s in starts)
    assert len(bins) == 20
    assert all(400 <= n <= 600 for n in bins.values()), bins
    per_minute = Counter(s.replace(second=0) for s in starts)
    # 12,960 minutes for 10,000 starts: a uniform spread puts at most ~7 in the busiest one.
    assert max(per_minute.values()) <= 8
    # The same certificate always gets the same window (any replica, any time).
    assert default_window(12345, NB, NB + NINETY_DAYS) == default_window(
        12345, NB, NB + NINETY_DAYS
    )


def test_suggestion_precedence() -> None:
    chosen = Suggestion(Window(NB + timedelta(days=1), NB + timedelta(days=1, hours=2)), "why")
    revoked_at = NB + timedelta(days=2, microseconds=5)
    revoked = suggest(7, NB, NB + NINETY_DAYS, revoked_at=revoked_at, chosen=chosen)
    assert revoked.why == "revoked"
    assert (
        revoked.window.end == NB + timedelta(days=2) and revoked.window.start < revoked.window.end
    )
    assert suggest(7, NB, NB + NINETY_DAYS, revoked_at=None, chosen=chosen) == chosen
    assert suggest(7, NB, NB + NINETY_DAYS, revoked_at=None, chosen=None) == Suggestion(
        default_window(7, NB, NB + NINETY_DAYS), None
    )


def test_a_window_of_a_certificate_of_seconds_still_ends_after_it_starts() -> None:
    for seconds in (1, 5, 10, 19):
        window = default_window(99, NB, NB + timedelta(seconds=seconds - 1))
        assert window.end > window.start, seconds


def _days(start: float, end: float) -> Window:
    return Window(NB + timedelta(days=start), NB + timedelta(days=end))


def test_an_upstream_window_replaces_the_default_and_the_sooner_end_wins() -> None:
    not_after = NB + NINETY_DAYS
    upstream = _days(60, 62)
    passed = suggest(7, NB, not_after, revoked_at=None, chosen=None, upstream=upstream)
    assert passed == Suggestion(upstream, UPSTREAM_WINDOW)
    # An operator's "within the hour" beats an upstream window that opened days ago, and
    # the other way round: the host is told to renew within both.
    operator = Suggestion(_days(10, 10.05), "key compromise")
    opened = _days(5, 13)
    both = suggest(7, NB, not_after, revoked_at=None, chosen=operator, upstream=opened)
    assert both == Suggestion(Window(opened.start, operator.window.end), "key compromise")
    urgent = _days(20, 20.5)
    later_operator = Suggestion(_days(30, 31), "rotation")
    both = suggest(7, NB, not_after, revoked_at=None, chosen=later_operator, upstream=urgent)
    assert both == Suggestion(urgent, UPSTREAM_WINDOW)
    revoked = suggest(7, NB, not_after, revoked_at=NB, chosen=None, upstream=upstream)
    assert revoked.why == "revoked"


def test_an_upstream_window_is_held_to_the_certificates_life_and_to_whole_seconds() -> None:
    not_after = NB + NINETY_DAYS
    # starting after the certificate's end: ignored (the default stands)
    assert served_upstream_window(_days(7000, 7001), not_after) is None
    assert (
        served_upstream_window(Window(not_after, not_after + timedelta(days=1)), not_after) is None
    )
    # ending after it: held to it
    held = served_upstream_window(_days(80, 400), not_after)
    assert held == Window(NB + timedelta(days=80), not_after)
    # a window of a tenth of a second: whole seconds, one long, its end after its start
    tiny = Window(NB + timedelta(microseconds=100_000), NB + timedelta(microseconds=200_000))
    assert served_upstream_window(tiny, not_after) == Window(NB, NB + timedelta(seconds=1))
    # a start in the past is kept: renew now
    past = _days(-3, -1)
    assert served_upstream_window(past, not_after) == past
