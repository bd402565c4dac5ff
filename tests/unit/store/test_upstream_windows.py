"""store.upstream_windows: the upstream's renewal windows of relayed certificates, and the
compare-and-set that lets one process at a time fetch each."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from acmefleet.store import certificates, upstream_windows
from acmefleet.store.engine import Database
from tests.unit.store.builders import at, certificate_model


def add_relayed(db: Database, cert_id: str, account_id: str, org_id: int, due: int) -> None:
    cert = dataclasses.replace(
        certificate_model(cert_id, account_id, org_id, f"7e{cert_id.encode().hex()}"),
        ca_level="upstream:le",
    )
    with db.write() as conn:
        certificates.insert_certificate(conn, cert, at(1))
        upstream_windows.track(conn, cert_id, "le", at(due))


def test_due_fetches_come_oldest_first_and_one_claim_wins(
    db: Database, org_id: int, account_id: str
) -> None:
    add_relayed(db, "late", account_id, org_id, due=20)
    add_relayed(db, "early", account_id, org_id, due=10)
    add_relayed(db, "later", account_id, org_id, due=99)
    with db.read() as conn:
        due = upstream_windows.due(conn, at(30), 10)
        assert upstream_windows.window_of(conn, "early") is None  # nothing fetched yet
    assert [d.certificate_id for d in due] == ["early", "late"]
    assert due[0].upstream == "le" and not due[0].revoked and due[0].failures == 0
    with db.write() as conn:
        assert upstream_windows.claim(conn, due[0], at(35))
        assert not upstream_windows.claim(conn, due[0], at(36))  # read before the first claim
    with db.read() as conn:
        assert [d.certificate_id for d in upstream_windows.due(conn, at(30), 10)] == ["late"]


def _claimed(db: Database, cert_id: str, now: int, until: int) -> upstream_windows.DueFetch:
    with db.read() as conn:
        (fetch,) = [
            d for d in upstream_windows.due(conn, at(now), 10) if d.certificate_id == cert_id
        ]
    with db.write() as conn:
        assert upstream_windows.claim(conn, fetch, at(until))
    return fetch


def test_a_window_is_kept_until_replaced_and_a_failure_keeps_it(
    db: Database, org_id: int, account_id: str
) -> None:
    add_relayed(db, "c1", account_id, org_id, due=0)
    _claimed(db, "c1", 1, 30)
    with db.write() as conn:
        assert upstream_windows.record_window(conn, "c1", at(30), (at(100), at(200)), at(5), at(50))
        # the claim is spent: a process that stalled past it writes nothing
        assert not upstream_windows.record_window(conn, "c1", at(30), None, at(6), at(99))
    with db.read() as conn:
        window = upstream_windows.window_of(conn, "c1")
        assert upstream_windows.due(conn, at(49), 10) == []
        assert upstream_windows.all_windows(conn) == {"c1": window}
    assert window == upstream_windows.UpstreamWindow(at(100), at(200), at(5))
    _claimed(db, "c1", 50, 55)
    with db.write() as conn:
        assert upstream_windows.record_failure(conn, "c1", at(55), at(60))
    _claimed(db, "c1", 60, 65)
    with db.write() as conn:
        assert upstream_windows.record_failure(conn, "c1", at(65), at(70))
    with db.read() as conn:
        assert upstream_windows.window_of(conn, "c1") == window
        (due,) = upstream_windows.due(conn, at(70), 10)
    assert due.failures == 2 and due.next_fetch_at == at(70)
    _claimed(db, "c1", 70, 75)
    with db.write() as conn:  # the upstream stopped offering renewalInfo
        upstream_windows.record_window(conn, "c1", at(75), None, at(71), at(72))
        assert upstream_windows.window_of(conn, "c1") is None
        upstream_windows.forget(conn, "c1")
    with db.read() as conn:
        assert upstream_windows.due(conn, at(10_000), 10) == []


def test_certificates_that_ended_are_no_longer_followed(
    db: Database, org_id: int, account_id: str
) -> None:
    add_relayed(db, "live", account_id, org_id, due=0)
    add_relayed(db, "revoked", account_id, org_id, due=0)
    with db.write() as conn:
        assert certificates.mark_revoked(conn, "revoked", at(2), 1)
        assert upstream_windows.forget_ended(conn, at(3)) == 1
    with db.read() as conn:
        assert [d.certificate_id for d in upstream_windows.due(conn, at(3), 10)] == ["live"]
        (live,) = upstream_windows.due(conn, at(3), 10)
    with db.write() as conn:  # past its end
        assert upstream_windows.forget_ended(conn, live.not_after + timedelta(seconds=1)) == 1
    with db.read() as conn:
        assert upstream_windows.due(conn, at(3), 10) == []
