"""store.renewals: operator-set windows and which finalized order replaced a certificate."""

from __future__ import annotations

import dataclasses
import threading

from acmefleet.store import certificates, renewals
from acmefleet.store.engine import Database
from tests.unit.store.builders import assert_fields, at, certificate_model


def add_cert(db: Database, cert_id: str, account_id: str, org_id: int) -> None:
    with db.write() as conn:
        certificates.insert_certificate(
            conn,
            certificate_model(cert_id, account_id, org_id, f"7e{cert_id.encode().hex()}"),
            at(1),
        )


def test_a_set_window_round_trips_and_a_new_one_replaces_it(
    db: Database, org_id: int, account_id: str
) -> None:
    add_cert(db, "w1", account_id, org_id)
    add_cert(db, "w2", account_id, org_id)
    first = renewals.SetWindow("w1", at(10), at(20), "CA incident", "admin:alice", at(5))
    with db.write() as conn:
        assert renewals.set_windows(conn, [first]) == 1
        assert renewals.set_windows(conn, []) == 0
    with db.read() as conn:
        got = renewals.window_of(conn, "w1")
        assert renewals.window_of(conn, "w2") is None
    assert_fields(got, dataclasses.asdict(first))
    again = dataclasses.replace(first, start=at(30), end=at(31), reason="second look")
    other = dataclasses.replace(first, certificate_id="w2")
    with db.write() as conn:
        assert renewals.set_windows(conn, [again, other]) == 2
    with db.read() as conn:
        assert renewals.all_windows(conn) == {"w1": again, "w2": other}


def test_one_order_replaces_a_certificate_and_a_refused_one_lets_go(
    db: Database, org_id: int, account_id: str
) -> None:
    add_cert(db, "old", account_id, org_id)
    with db.write() as conn:
        assert renewals.replaced_by(conn, "old") is None
        assert renewals.claim_replacement(conn, "old", "o-first")
        assert renewals.claim_replacement(conn, "old", "o-first")  # the same order again
        assert not renewals.claim_replacement(conn, "old", "o-second")
        assert not renewals.claim_replacement(conn, "no-such-certificate", "o-third")
    with db.read() as conn:
        assert renewals.replaced_by(conn, "old") == "o-first"
        assert renewals.replaced_certificates(conn) == {"old"}
    with db.write() as conn:
        renewals.release_replacement(conn, "o-second")  # not its claim: nothing changes
        assert renewals.replaced_by(conn, "old") == "o-first"
        renewals.release_replacement(conn, "o-first")
        assert renewals.replaced_by(conn, "old") is None
        assert renewals.claim_replacement(conn, "old", "o-second")


def test_two_operators_pulling_the_same_certificates_take_turns(
    db: Database, org_id: int, account_id: str
) -> None:
    """Each writes in its own transaction at the same moment (PostgreSQL lets both start):
    the certificates' rows are locked first, so neither meets the other's row (no unique
    violation), and the last one's window stands."""
    for cert_id in ("p1", "p2"):
        add_cert(db, cert_id, account_id, org_id)
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def pull(reason: str) -> None:
        try:
            start.wait(timeout=10)  # (SQLite's write transactions queue; PostgreSQL's overlap)
            with db.write() as conn:
                windows = [
                    renewals.SetWindow(c, at(10), at(20), reason, "admin", at(5))
                    for c in ("p2", "p1")
                ]
                renewals.set_windows(conn, windows)
        except BaseException as exc:  # collected: the test fails with it below
            failures.append(exc)

    threads = [threading.Thread(target=pull, args=(r,)) for r in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    with db.read() as conn:
        stored = renewals.all_windows(conn)
    assert set(stored) == {"p1", "p2"} and len({w.reason for w in stored.values()}) == 1
