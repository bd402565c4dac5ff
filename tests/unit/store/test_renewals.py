"""store.renewals: operator-set windows and which finalized order replaced a certificate."""

from __future__ import annotations

import dataclasses

from acmefleet.store import certificates, orders, renewals
from acmefleet.store.engine import Database
from tests.unit.store.builders import assert_fields, at, certificate_model, order_model


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


def test_only_a_finalized_order_replaces(db: Database, org_id: int, account_id: str) -> None:
    add_cert(db, "old", account_id, org_id)
    pending = order_model("o-pending", account_id, (), replaces="x.y", replaces_certificate="old")
    valid = order_model("o-valid", account_id, (), replaces="x.y", replaces_certificate="old")
    with db.write() as conn:
        orders.insert_order(conn, pending, at(2))
        orders.insert_order(conn, valid, at(2))
        renewals.lock_certificate(conn, "old")
        assert renewals.replaced_by(conn, "old") is None
        assert orders.set_finalization(conn, "o-valid", expected="none", finalization="valid")
    with db.read() as conn:
        assert renewals.replaced_by(conn, "old") == "o-valid"
        assert renewals.replaced_by(conn, "old", other_than="o-valid") is None
        assert renewals.replaced_certificates(conn) == {"old"}
