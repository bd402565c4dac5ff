"""``acmefleet status``'s verdicts, without hosts: timers, ARI states, flags, Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acmefleet.fleet import prometheus, tls
from acmefleet.fleet.revocation_probe import RenewalWindow
from acmefleet.fleet.status import FLAGS, HostStatus, RenewalUnits, parse_timer_answer

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("enabled=enabled\nactive\nactive\n", RenewalUnits("enabled", True)),
        ("enabled=enabled\nactive\ninactive\n", RenewalUnits("enabled", False)),
        ("enabled=enabled\nactive\n", RenewalUnits("enabled", True)),  # no renew-check
        ("enabled=disabled\ninactive\n", RenewalUnits("disabled", False)),
        ("enabled=\ninactive\n", RenewalUnits("disabled", False)),  # no such unit
        ("", RenewalUnits("unknown", None)),
        ("active\n", RenewalUnits("unknown", None)),
    ],
)
def test_timer_answers(stdout: str, expected: RenewalUnits) -> None:
    assert parse_timer_answer(stdout) == expected


def served(**changes: object) -> tls.ServedCertificate:
    base: dict[str, object] = {
        "host": "web1",
        "reachable": True,
        "verified": True,
        "problem": None,
        "names": ("web1.example.com",),
        "issuer": "acmefleet private issuing CA",
        "serial": "1f",
        "not_after": NOW + timedelta(days=80),
    }
    base.update(changes)
    return tls.ServedCertificate(**base)  # type: ignore[arg-type]


def status(**changes: object) -> HostStatus:
    base: dict[str, object] = {
        "host": "web1",
        "stack": "lego_nginx",
        "served": served(),
        "renewal": "enabled",
        "timers_active": True,
        "window": RenewalWindow(NOW + timedelta(days=50), NOW + timedelta(days=55)),
        "ocsp": "good",
    }
    base.update(changes)
    return HostStatus(**base)  # type: ignore[arg-type]


def test_a_kept_host_has_no_flag() -> None:
    healthy = status()
    assert healthy.flags(NOW) == [] and healthy.ari(NOW) == "not-due"
    row = healthy.as_json(NOW)
    assert row["flags"] == [] and row["ari"] == "not-due" and row["ocsp"] == "good"
    assert row["renewal_window"] == {"start": "2027-01-26T12:00:00Z", "end": "2027-01-31T12:00:00Z"}


def test_each_flag() -> None:
    due = RenewalWindow(NOW - timedelta(minutes=5), NOW + timedelta(minutes=5))
    past = RenewalWindow(NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    assert status(window=due).flags(NOW) == [] and status(window=due).ari(NOW) == "due"
    assert status(window=past).flags(NOW) == ["past-window"]
    assert status(ocsp="revoked").flags(NOW) == ["revoked"]
    assert status(timers_active=False).flags(NOW) == ["timer-inactive"]
    assert status(renewal="disabled", timers_active=None).flags(NOW) == ["timer-inactive"]
    assert status(served=served(verified=False)).flags(NOW) == ["unverified"]
    assert status(served=served(reachable=False, verified=False)).flags(NOW) == ["unreachable"]
    # What cannot be learnt is not a flag: no window, OCSP unknown, Windows timers unknown.
    assert status(window=None, ocsp="unknown", timers_active=None).flags(NOW) == []
    assert status(window=None).ari(NOW) == "unknown"


def test_prometheus_text(tmp_path: Path) -> None:
    rows = [status(), status(host='we"b\\2', ocsp="revoked", window=None)]
    text = prometheus.render(rows, NOW)
    assert 'acmefleet_certificate_days_left{host="web1",stack="lego_nginx"} 80' in text
    assert 'acmefleet_renewal_window_seconds{host="web1",edge="start"} 1800964800' in text
    assert 'acmefleet_host_flag{host="we\\"b\\\\2",flag="revoked"} 1' in text
    assert text.count("acmefleet_host_flag{") == 2 * len(FLAGS)
    for line in text.splitlines():
        assert line.startswith("#") or line.rsplit(" ", 1)[1].lstrip("-").isdigit(), line
    target = tmp_path / "acmefleet.prom"
    prometheus.write(target, rows, NOW)
    assert target.read_text() == text
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["acmefleet.prom"]
