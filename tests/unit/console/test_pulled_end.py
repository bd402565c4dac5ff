"""A pulled-forward window never puts a renewal off, nor ends after the certificate."""

from __future__ import annotations

from datetime import timedelta

from acmefleet.ca.renewal_info import Suggestion, Window
from acmefleet.console.renewals import _pulled_end
from tests.unit.store.builders import at, certificate_model

CERT = certificate_model(
    "c1", "acct", 1, "1f", not_before=at(0), not_after=at(0) + timedelta(days=90)
)


def test_as_asked_when_the_current_window_is_later() -> None:
    now = at(0) + timedelta(days=10)
    later = Suggestion(Window(now + timedelta(days=44), now + timedelta(days=48)), None)
    assert _pulled_end(now + timedelta(hours=24), CERT, later, now) == now + timedelta(hours=24)


def test_never_later_than_the_window_it_had() -> None:
    now = at(0) + timedelta(days=56)
    open_now = Suggestion(Window(now - timedelta(days=1), now + timedelta(hours=3)), None)
    assert _pulled_end(now + timedelta(days=30), CERT, open_now, now) == now + timedelta(hours=3)


def test_never_after_expiry_and_at_least_a_second() -> None:
    now = at(0) + timedelta(days=89, hours=23)
    overdue = Suggestion(Window(now - timedelta(days=20), now - timedelta(days=15)), None)
    assert _pulled_end(now + timedelta(days=2), CERT, overdue, now) == CERT.not_after
    expired_now = CERT.not_after
    assert _pulled_end(now, CERT, overdue, expired_now) == expired_now + timedelta(seconds=1)
