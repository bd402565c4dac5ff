"""console.login_throttle on a migrated SQLite database: counts, windows, audit rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from acmefleet.console import tokens
from acmefleet.console.login_throttle import (
    Throttle,
    forget_failures,
    record_failure,
    retry_after,
    source_key,
)
from acmefleet.store import audit, login_failures
from acmefleet.store.engine import Database
from tests.unit.rows import NOW

THROTTLE = Throttle(per_source=3, overall=5, window=timedelta(minutes=10))


def _fail(database: Database, source: str | None, at_minutes: float = 0) -> None:
    with database.write() as conn:
        at = NOW + timedelta(minutes=at_minutes)
        record_failure(conn, THROTTLE, source=source, now=at, token_id=None)


def _wait(database: Database, source: str | None, at_minutes: float = 0) -> int | None:
    with database.read() as conn:
        return retry_after(conn, THROTTLE, source, NOW + timedelta(minutes=at_minutes))


def test_an_address_is_refused_after_its_limit_until_the_window_moves(database: Database) -> None:
    for minute in (0, 1, 2):
        assert _wait(database, "192.0.2.1", minute) is None
        _fail(database, "192.0.2.1", minute)
    # The third failure reached the limit: refused until the first leaves the window.
    assert _wait(database, "192.0.2.1", 3) == 7 * 60
    assert _wait(database, "192.0.2.1", 9.99) == 1
    assert _wait(database, "192.0.2.1", 10) is None
    assert _wait(database, "192.0.2.2", 3) is None, "other addresses are not affected"


def test_all_addresses_are_refused_past_the_overall_limit(database: Database) -> None:
    for n, source in enumerate(["192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.2", "2001:db8::1"]):
        _fail(database, source, n)
    assert _wait(database, "198.51.100.9", 5) == 5 * 60  # until the first ages out
    assert _wait(database, "198.51.100.9", 10) is None


def test_ipv6_addresses_count_by_their_64(database: Database) -> None:
    assert (
        source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key(None) == "unknown"
    for host in (1, 2, 3):
        _fail(database, f"2001:db8:1:2::{host}")
    assert _wait(database, "2001:db8:1:2::77") is not None
    assert _wait(database, "2001:db8:1:3::1") is None


def test_a_sign_in_forgets_the_failures_of_its_address(database: Database) -> None:
    for _ in range(3):
        _fail(database, "192.0.2.1")
    with database.write() as conn:
        forget_failures(conn, "192.0.2.1")
    assert _wait(database, "192.0.2.1") is None


def test_old_failures_are_pruned(database: Database) -> None:
    _fail(database, "192.0.2.1", 0)
    _fail(database, "192.0.2.2", 30)
    with database.read() as conn:
        assert login_failures.recent(conn, since=NOW - timedelta(days=1), limit=10) == [
            NOW + timedelta(minutes=30)
        ]


@pytest.mark.parametrize(
    ("presented", "target"),
    [
        ("acmefleet_0123456789abcdef_wrongsecret", "0123456789abcdef"),
        ("acmefleet_nothex_secret", "-"),
        ("pasted password", "-"),
    ],
)
def test_a_failure_is_audited_without_the_token(
    database: Database, presented: str, target: str
) -> None:
    with database.write() as conn:
        record_failure(
            conn, THROTTLE, source="192.0.2.1", now=NOW, token_id=tokens.presented_id(presented)
        )
    with database.read() as conn:
        [event] = audit.list_events(conn)
    assert event["action"] == "console.login_failed"
    assert event["actor"] == "anonymous"
    assert event["target"] == target
    assert event["source"] == "192.0.2.1"
    secret = presented.rsplit("_", 1)[-1]
    assert secret not in repr(event)
