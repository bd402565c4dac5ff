"""policy.upstream_windows: when the relay asks the upstream again (RFC 9773 §4.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from acmefleet.policy.upstream_windows import (
    DEFAULT_RECHECK,
    LONGEST_RECHECK,
    NO_ARI_RECHECK,
    SHORTEST_RECHECK,
    next_check,
    retry_after_failure,
)
from acmefleet.upstream.client import RenewalWindow

NOW = datetime(2027, 1, 1, tzinfo=UTC)


def window(retry_after: float | None) -> RenewalWindow:
    return RenewalWindow(NOW, NOW + timedelta(days=1), retry_after)


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        (None, DEFAULT_RECHECK),  # no Retry-After: six hours
        (3600.0, timedelta(hours=1)),
        (1.0, SHORTEST_RECHECK),  # held to a minute at least
        (86400.0 * 30, LONGEST_RECHECK),  # and a day at most
    ],
)
def test_the_next_fetch_follows_retry_after_within_bounds(
    retry_after: float | None, wait: timedelta
) -> None:
    assert next_check(NOW, window(retry_after)) == NOW + wait


def test_an_upstream_without_renewal_info_is_asked_again_a_day_later() -> None:
    assert next_check(NOW, None) == NOW + NO_ARI_RECHECK


def test_failures_back_off_doubling_to_six_hours_never_before_retry_after() -> None:
    waits = [retry_after_failure(NOW, n, None) - NOW for n in (1, 2, 3, 12, 40)]
    assert waits == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        DEFAULT_RECHECK,
        DEFAULT_RECHECK,
    ]
    assert retry_after_failure(NOW, 1, 7200.0) == NOW + timedelta(hours=2)
    assert retry_after_failure(NOW, 1, 10.0**9) == NOW + LONGEST_RECHECK
