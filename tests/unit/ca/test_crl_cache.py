"""The per-process CRL cache: reused only while the database's revocation mark holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from acmefleet.ca.crl_cache import CRL_CACHE_FOR, CrlCache

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MARK = (3, NOW - timedelta(hours=1))


def test_a_crl_is_reused_while_its_mark_holds_and_for_a_minute_at_most() -> None:
    cache = CrlCache()
    cache.put("private", MARK, b"crl", NOW)
    assert cache.get("private", MARK, NOW + CRL_CACHE_FOR - timedelta(seconds=1)) == b"crl"
    assert cache.get("private", MARK, NOW + CRL_CACHE_FOR) is None
    assert cache.get("public", MARK, NOW) is None


def test_a_revocation_anywhere_changes_the_mark_and_the_next_fetch_rebuilds() -> None:
    cache = CrlCache()
    cache.put("private", MARK, b"crl", NOW)
    # Another replica revoked one: the count moved on.
    assert cache.get("private", (4, NOW), NOW) is None
    # Same count, a later revocation (a revoked row deleted by housekeeping, one added).
    assert cache.get("private", (3, NOW), NOW) is None


def test_with_the_database_away_the_last_crl_serves_until_its_next_update() -> None:
    cache = CrlCache()
    assert cache.last_built("private", NOW, timedelta(days=1)) is None
    cache.put("private", MARK, b"crl", NOW)
    assert cache.last_built("private", NOW + timedelta(hours=23), timedelta(days=1)) == b"crl"
    assert cache.last_built("private", NOW + timedelta(days=1), timedelta(days=1)) is None
