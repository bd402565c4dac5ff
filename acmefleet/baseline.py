"""Dates and periods of the CA/Browser Forum Baseline Requirements that code and
configuration both follow (a leaf: it imports nothing of acmefleet)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# CA/B BR 4.2.1 (ballot SC-081v3): the longest a domain validation (BR 3.2.2.4) may be reused
# for an issuance on or after each date; before the first, 398 days.
DCV_REUSE_SCHEDULE: tuple[tuple[datetime, timedelta], ...] = (
    (datetime(2029, 3, 15, tzinfo=UTC), timedelta(days=10)),
    (datetime(2027, 3, 15, tzinfo=UTC), timedelta(days=100)),
    (datetime(2026, 3, 15, tzinfo=UTC), timedelta(days=200)),
)
DCV_REUSE_BEFORE_SCHEDULE = timedelta(days=398)


def dcv_reuse_period(at: datetime) -> timedelta:
    """How long before ``at`` a BR domain validation may have been completed to be reused."""
    for since, period in DCV_REUSE_SCHEDULE:
        if at >= since:
            return period
    return DCV_REUSE_BEFORE_SCHEDULE


def dcv_reuse_until(validated_at: datetime, window: timedelta, now: datetime) -> datetime:
    """Until when a domain validation completed at ``validated_at`` may serve issuances, as
    seen at ``now``: at most ``window`` after it, and at no moment from ``now`` on for longer
    than the BR 4.2.1 period in force at that moment (the schedule only shortens, so a
    validation may stop being usable on the day a shorter period takes effect)."""
    until = validated_at + min(window, dcv_reuse_period(now))
    for since, period in sorted(DCV_REUSE_SCHEDULE):
        if now < since < until:
            until = min(until, max(since, validated_at + period))
    return until
