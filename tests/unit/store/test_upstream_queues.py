"""The relay's queues in the store: relayed orders and upstream revocations under leases.

A relayed order is due once its ``next_attempt_at`` has come and nobody holds it; a claim is
a compare-and-set UPDATE, so one process holds it at a time, and every later write (renew,
record the upstream order, reschedule, finish, release) is conditional on still holding it:
a process that stalled past its lease changes nothing once another has taken over.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from acmefleet.models import RelayedOrder
from acmefleet.policy import relay
from acmefleet.store import accounts, orders, orgs
from acmefleet.store import certificates as cert_store
from acmefleet.store import upstream_orders as relay_store
from acmefleet.store import upstream_revocations as revocations
from acmefleet.store.engine import Database, open_database
from acmefleet.store.schema import upstream_orders, upstream_revocations
from tests.unit.store.builders import (
    account_model,
    at,
    authorization_model,
    certificate_model,
    order_model,
)

NOW = at(100)
LEASE = timedelta(seconds=30)
UPSTREAM = "letsencrypt"
RELAY = relay.RelayTo(UPSTREAM, retry_for=timedelta(hours=6))
ERROR = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "slow down"}


def _queue(db: Database, account_id: str, number: int, when: datetime = NOW) -> RelayedOrder:
    """Order ``order-<n>`` (finalization ``processing``) relayed to UPSTREAM, due at ``when``."""
    authz = authorization_model(f"authz-{number}", account_id, f"host{number}.example.com")
    with db.write() as conn:
        orders.insert_authorization(conn, authz, at(1))
        order = order_model(f"order-{number}", account_id, (authz,), finalization="processing")
        orders.insert_order(conn, order, at(2))
        return relay.queue(conn, order, f"csr-of-{number}", RELAY, when)


def _row_in(conn: Connection, order_id: str) -> dict[str, Any]:
    """The raw stored row: every column, to show that a refused write changed none."""
    query = select(upstream_orders).where(upstream_orders.c.order_id == order_id)
    return dict(conn.execute(query).one()._mapping)


def _row(db: Database, order_id: str) -> dict[str, Any]:
    with db.read() as conn:
        return _row_in(conn, order_id)


def _get_in(conn: Connection, order_id: str) -> RelayedOrder:
    relayed = relay_store.get_relayed(conn, order_id)
    assert relayed is not None
    return relayed


def _get(db: Database, order_id: str) -> RelayedOrder:
    with db.read() as conn:
        return _get_in(conn, order_id)


def _due(db: Database, when: datetime, limit: int = 100) -> list[str]:
    with db.read() as conn:
        return [r.order_id for r in relay_store.due(conn, when, limit)]


def _claim(db: Database, order_id: str, owner: str, when: datetime = NOW) -> bool:
    with db.write() as conn:
        return relay_store.claim(conn, order_id, owner, when, when + LEASE)


# --- relayed orders ---------------------------------------------------------------------


def test_a_queued_order_reads_back_as_queued(db: Database, account_id: str) -> None:
    queued = _queue(db, account_id, 1)
    assert queued.state == "queued" and queued.attempts == 0
    assert queued.next_attempt_at == NOW and queued.give_up_at == NOW + timedelta(hours=6)
    assert _get(db, "order-1") == queued
    row = _row(db, "order-1")
    assert row["updated_at"] == NOW and row["lease_owner"] is None and row["lease_until"] is None
    with db.read() as conn:
        assert relay_store.get_relayed(conn, "order-2") is None


def test_due_once_the_next_attempt_has_come_oldest_first(db: Database, account_id: str) -> None:
    _queue(db, account_id, 2, at(105))
    _queue(db, account_id, 1, at(100))
    assert _due(db, at(99)) == []
    assert _due(db, at(100)) == ["order-1"]
    assert _due(db, at(105)) == ["order-1", "order-2"]
    assert _due(db, at(105), limit=1) == ["order-1"]


def test_a_claimed_order_is_not_due_while_its_lease_stands(db: Database, account_id: str) -> None:
    _queue(db, account_id, 1)
    _queue(db, account_id, 2)
    assert _claim(db, "order-1", "p1")
    assert _due(db, NOW) == ["order-2"]
    assert _due(db, NOW + LEASE - timedelta(seconds=1)) == ["order-2"]
    with db.read() as conn:
        assert [(r.order_id, o) for r, o in relay_store.leased(conn, NOW)] == [("order-1", "p1")]
        assert relay_store.leased(conn, NOW + LEASE) == []
    # The lease has run out (p1 died): due again.
    assert _due(db, NOW + LEASE) == ["order-1", "order-2"]
    held = _get(db, "order-1")
    assert (held.lease_owner, held.lease_until) == ("p1", NOW + LEASE)


def test_a_claim_is_exclusive_until_its_lease_runs_out(db: Database, account_id: str) -> None:
    _queue(db, account_id, 1)
    assert _claim(db, "order-1", "p1")
    assert not _claim(db, "order-1", "p2")
    assert not _claim(db, "order-1", "p1"), "not twice either"
    assert not _claim(db, "order-1", "p2", NOW + LEASE - timedelta(seconds=1))
    later = NOW + LEASE
    assert _claim(db, "order-1", "p2", later)
    taken = _get(db, "order-1")
    assert (taken.lease_owner, taken.lease_until) == ("p2", later + LEASE)
    with db.write() as conn:
        assert not relay_store.renew(conn, "order-1", "p1", later + 2 * LEASE)
        assert relay_store.renew(conn, "order-1", "p2", later + 2 * LEASE)
    assert _get(db, "order-1").lease_until == later + 2 * LEASE


def test_take_over_only_from_the_named_dead_owner(db: Database, account_id: str) -> None:
    _queue(db, account_id, 1)
    _queue(db, account_id, 2)
    assert _claim(db, "order-1", "p1")
    with db.write() as conn:
        assert not relay_store.take_over(conn, "order-1", "p9", "p2", NOW + LEASE)
        assert not relay_store.take_over(conn, "order-2", "p1", "p2", NOW + LEASE), "unleased"
        assert not relay_store.take_over(conn, "order-9", "p1", "p2", NOW + LEASE)
    assert _get(db, "order-1").lease_owner == "p1"
    # p1 is known dead: p2 takes the order before p1's lease runs out.
    with db.write() as conn:
        assert relay_store.take_over(conn, "order-1", "p1", "p2", NOW + 2 * LEASE)
        assert not relay_store.take_over(conn, "order-1", "p1", "p3", NOW + 2 * LEASE)
    taken = _get(db, "order-1")
    assert (taken.lease_owner, taken.lease_until) == ("p2", NOW + 2 * LEASE)


@pytest.mark.parametrize("taken", ["taken-over", "claimed-after-the-lease-ran-out"])
def test_a_stale_holder_changes_nothing_once_another_holds_the_order(
    db: Database, account_id: str, taken: str
) -> None:
    _queue(db, account_id, 1)
    assert _claim(db, "order-1", "p1")
    later = NOW + LEASE + timedelta(seconds=5)
    with db.write() as conn:
        assert relay_store.record_placed(conn, "order-1", "p1", "https://up/order/1", NOW)
        if taken == "taken-over":
            assert relay_store.take_over(conn, "order-1", "p1", "p2", NOW + 2 * LEASE)
        else:
            assert relay_store.claim(conn, "order-1", "p2", NOW + LEASE, NOW + 2 * LEASE)
    before = _row(db, "order-1")
    assert before["lease_owner"] == "p2"
    with db.write() as conn:
        assert not relay_store.renew(conn, "order-1", "p1", later + LEASE)
        assert not relay_store.forget_placed(conn, "order-1", "p1", later)
        assert not relay_store.reschedule(conn, "order-1", "p1", later + LEASE, ERROR, later)
        assert not relay_store.finish(
            conn, "order-1", "p1", "valid", later, certificate_url="https://up/cert/1"
        )
        assert not relay_store.finish(conn, "order-1", "p1", "invalid", later, error=ERROR)
        assert relay_store.release(conn, ["order-1"], "p1") == 0
    assert _row(db, "order-1") == before
    with db.write() as conn:  # nor can it record an order once p2 has forgotten p1's
        assert relay_store.forget_placed(conn, "order-1", "p2", later)
        after_forget = _row_in(conn, "order-1")
        assert not relay_store.record_placed(conn, "order-1", "p1", "https://up/order/x", later)
    assert _row(db, "order-1") == after_forget
    assert after_forget["upstream_order_url"] is None and after_forget["lease_owner"] == "p2"


def test_an_unclaimed_order_takes_no_holders_writes(db: Database, account_id: str) -> None:
    _queue(db, account_id, 1)
    before = _row(db, "order-1")
    with db.write() as conn:
        assert not relay_store.renew(conn, "order-1", "p1", NOW + LEASE)
        assert not relay_store.record_placed(conn, "order-1", "p1", "https://up/order/1", NOW)
        assert not relay_store.reschedule(conn, "order-1", "p1", NOW + LEASE, ERROR, NOW)
        assert not relay_store.finish(conn, "order-1", "p1", "valid", NOW)
    assert _row(db, "order-1") == before


def test_the_upstream_order_is_recorded_once(db: Database, account_id: str) -> None:
    _queue(db, account_id, 1)
    assert _claim(db, "order-1", "p1")
    later = NOW + timedelta(seconds=3)
    with db.write() as conn:
        assert relay_store.record_placed(conn, "order-1", "p1", "https://up/order/1", later)
        assert not relay_store.record_placed(conn, "order-1", "p1", "https://up/order/2", later)
    row = _row(db, "order-1")
    assert row["upstream_order_url"] == "https://up/order/1" and row["updated_at"] == later
    # The upstream forgot its order: cleared, a new one can be recorded.
    with db.write() as conn:
        assert relay_store.forget_placed(conn, "order-1", "p1", later)
        assert _get_in(conn, "order-1").upstream_order_url is None
        assert relay_store.record_placed(conn, "order-1", "p1", "https://up/order/2", later)
    assert _get(db, "order-1").upstream_order_url == "https://up/order/2"


def test_reschedule_counts_the_attempt_and_gives_the_order_back(
    db: Database, account_id: str
) -> None:
    _queue(db, account_id, 1)
    assert _claim(db, "order-1", "p1")
    with db.write() as conn:
        assert relay_store.record_placed(conn, "order-1", "p1", "https://up/order/1", NOW)
    first = NOW + timedelta(seconds=5)
    with db.write() as conn:
        assert relay_store.reschedule(conn, "order-1", "p1", at(110), ERROR, first)
        assert not relay_store.reschedule(conn, "order-1", "p1", at(120), ERROR, first), "once"
    relayed = _get(db, "order-1")
    assert relayed.state == "queued" and relayed.attempts == 1
    assert relayed.next_attempt_at == at(110) and relayed.last_error == ERROR
    assert (relayed.lease_owner, relayed.lease_until) == (None, None)
    assert relayed.upstream_order_url == "https://up/order/1", "kept for the next attempt"
    assert _row(db, "order-1")["updated_at"] == first
    assert _due(db, at(110) - timedelta(seconds=1)) == []
    assert _due(db, at(110)) == ["order-1"]
    # The next attempt, by another process, fails too: counted again.
    other = {"type": "urn:ietf:params:acme:error:serverInternal", "detail": "down"}
    assert _claim(db, "order-1", "p2", at(110))
    with db.write() as conn:
        assert relay_store.reschedule(conn, "order-1", "p2", at(130), other, at(111))
    relayed = _get(db, "order-1")
    assert (relayed.attempts, relayed.next_attempt_at, relayed.last_error) == (2, at(130), other)


def test_finish_ends_the_order_out_of_the_queue(db: Database, account_id: str) -> None:
    _queue(db, account_id, 1)
    _queue(db, account_id, 2)
    assert _claim(db, "order-1", "p1")
    assert _claim(db, "order-2", "p1")
    done = NOW + timedelta(seconds=7)
    cert_url = "https://up/cert/1"
    with db.write() as conn:
        assert relay_store.finish(conn, "order-1", "p1", "valid", done, certificate_url=cert_url)
        assert relay_store.finish(conn, "order-2", "p1", "invalid", done, error=ERROR)
    valid, invalid = _get(db, "order-1"), _get(db, "order-2")
    assert (valid.state, valid.certificate_url, valid.last_error) == ("valid", cert_url, None)
    assert (invalid.state, invalid.certificate_url, invalid.last_error) == (
        "invalid",
        None,
        ERROR,
    )
    for ended in (valid, invalid):
        assert ended.attempts == 1
        assert (ended.lease_owner, ended.lease_until) == (None, None)
    assert _row(db, "order-1")["updated_at"] == done
    # No longer queued: never due, claimable, leased or writable again.
    far = NOW + timedelta(days=30)
    assert _due(db, far) == []
    before = _row(db, "order-1")
    with db.write() as conn:
        assert relay_store.leased(conn, NOW) == []
        assert not relay_store.claim(conn, "order-1", "p2", far, far + LEASE)
        assert not relay_store.take_over(conn, "order-1", "p1", "p2", far + LEASE)
        assert not relay_store.finish(conn, "order-1", "p1", "invalid", far, error=ERROR)
        assert not relay_store.reschedule(conn, "order-1", "p1", far, ERROR, far)
    assert _row(db, "order-1") == before


def test_release_gives_the_leases_back(db: Database, account_id: str) -> None:
    _queue(db, account_id, 1)
    _queue(db, account_id, 2)
    _queue(db, account_id, 3)
    for order_id in ("order-1", "order-2"):
        assert _claim(db, order_id, "p1")
    assert _claim(db, "order-3", "p2")
    with db.write() as conn:
        assert relay_store.release(conn, ["order-1", "order-2", "order-3"], "p9") == 0
        assert relay_store.release(conn, ["order-1", "order-2", "order-3"], "p1") == 2
    released = _get(db, "order-1")
    assert (released.lease_owner, released.lease_until, released.attempts) == (None, None, 0)
    assert _due(db, NOW) == ["order-1", "order-2"]
    assert _claim(db, "order-1", "p3")
    assert _get(db, "order-3").lease_owner == "p2"


def test_racing_claimers_on_separate_engines_take_each_order_once(
    db: Database, account_id: str
) -> None:
    """Eight claimers, each with its own engines (as separate processes have), try to claim
    the same queued orders at the same moment: each order goes to exactly one of them."""
    ids = [_queue(db, account_id, n).order_id for n in range(1, 6)]
    won: Counter[str] = Counter()
    winners: dict[str, str] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def claimer(owner: str) -> None:
        database = open_database(db.writer.url.render_as_string(hide_password=False))
        try:
            barrier.wait()
            for order_id in ids:
                with database.write() as conn:
                    if relay_store.claim(conn, order_id, owner, NOW, NOW + LEASE):
                        with lock:
                            won[order_id] += 1
                            winners[order_id] = owner
        except BaseException as error:  # reported below: a thread's failure is not a test's
            errors.append(error)
        finally:
            database.dispose()

    threads = [threading.Thread(target=claimer, args=(f"p{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(won) == sorted(ids)
    assert set(won.values()) == {1}
    for order_id in ids:
        assert _get(db, order_id).lease_owner == winners[order_id]


# --- fair shares between organisations --------------------------------------------------
#
# One upstream account serves every organisation: due orders come each organisation's in
# turn (its rank among its own due orders plus what it already has in flight), not FIFO.


def _second_org_account(db: Database) -> str:
    """Account ``acct-2``, of organisation ``beta`` (``account_id`` is ``acme``'s)."""
    with db.write() as conn:
        beta = orgs.create_org(conn, "beta", at(3))
        accounts.insert_account(conn, account_model(beta.id, 2))
    return "acct-2"


def _seconds(n: int) -> datetime:
    return NOW + timedelta(seconds=n)


def test_a_mass_renewal_does_not_starve_another_organisation(db: Database, account_id: str) -> None:
    beta = _second_org_account(db)
    for n in range(1, 21):  # acme's mass renewal, queued first
        _queue(db, account_id, n, _seconds(n))
    for n in (101, 102):
        _queue(db, beta, n, _seconds(20 + n))
    later = _seconds(200)
    assert _due(db, later, limit=4) == ["order-1", "order-101", "order-2", "order-102"]
    everything = _due(db, later)
    assert everything[:4] == ["order-1", "order-101", "order-2", "order-102"]
    assert everything[4:] == [f"order-{n}" for n in range(3, 21)]
    # One organisation alone: its own order, oldest first, as before.
    assert _due(db, _seconds(20), limit=3) == ["order-1", "order-2", "order-3"]


def test_an_organisation_with_orders_in_flight_waits_behind_one_without(
    db: Database, account_id: str
) -> None:
    beta = _second_org_account(db)
    for n in range(1, 9):
        _queue(db, account_id, n, _seconds(n))
    for n in (1, 2, 3):  # three of acme's in flight, held by two processes
        assert _claim(db, f"order-{n}", "p1" if n < 3 else "p2", _seconds(10))
    for n in (101, 102):  # beta's, queued after all of acme's
        _queue(db, beta, n, _seconds(n - 90))
    later = _seconds(20)
    assert _due(db, later, limit=2) == ["order-101", "order-102"]
    assert _due(db, later) == ["order-101", "order-102"] + [f"order-{n}" for n in range(4, 9)]
    # Turns, not a ban: acme's 4th order (rank 1 + 3 in flight) comes before beta's 4th.
    for n in (103, 104, 105):
        _queue(db, beta, n, _seconds(n - 90))
    assert _due(db, later, limit=6) == [
        "order-101",
        "order-102",
        "order-103",
        "order-4",
        "order-104",
        "order-5",
    ]
    # Once those leases have run out they are due again, and nothing of acme's is in flight.
    expired = _seconds(10) + LEASE
    assert _due(db, expired, limit=4) == ["order-1", "order-101", "order-2", "order-102"]


def test_fair_order_keeps_what_is_due(db: Database, account_id: str) -> None:
    beta = _second_org_account(db)
    _queue(db, account_id, 1, _seconds(1))  # its lease runs out: due again
    _queue(db, account_id, 2, _seconds(2))  # leased, the lease stands
    _queue(db, account_id, 3, _seconds(3) + timedelta(days=1))  # not due yet
    _queue(db, account_id, 4, _seconds(4))  # finished: not queued
    _queue(db, beta, 101, _seconds(6))
    _queue(db, beta, 102, _seconds(7))  # finished: not queued
    for order_id in ("order-1", "order-4", "order-102"):
        assert _claim(db, order_id, "p1", _seconds(8))
    with db.write() as conn:
        done = _seconds(9)
        assert relay_store.finish(conn, "order-4", "p1", "valid", done, certificate_url="u4")
        assert relay_store.finish(conn, "order-102", "p1", "invalid", done, error=ERROR)
    when = _seconds(8) + LEASE
    assert _claim(db, "order-2", "p2", when - timedelta(seconds=1))
    # acme's order-2 is in flight, beta's finished order-102 is not (it would tie them, and
    # acme's older order-1 would go first): beta's order, then acme's expired order-1.
    with db.read() as conn:
        relayed = relay_store.due(conn, when, 10)
    assert relayed == [_get(db, "order-101"), _get(db, "order-1")]
    assert (relayed[1].lease_owner, relayed[1].lease_until) == ("p1", when)
    # Not before their time: nothing at all, then order-3 once due (every lease run out).
    assert _due(db, NOW) == []
    assert _due(db, _seconds(3) + timedelta(days=1)) == [
        "order-1",
        "order-101",
        "order-2",
        "order-3",
    ]


# --- upstream revocations ---------------------------------------------------------------


def _certificate(db: Database, account_id: str, org_id: int, cert_id: str, ca_level: str) -> None:
    with db.write() as conn:
        cert_store.insert_certificate(
            conn,
            certificate_model(cert_id, account_id, org_id, f"5e{cert_id[-1]}", ca_level=ca_level),
            at(20),
        )


def _revoke(db: Database, cert_id: str, reason: int = 1, when: datetime = NOW) -> bool:
    with db.write() as conn:
        certificate = cert_store.get_certificate(conn, cert_id)
        assert certificate is not None
        return revocations.queue_if_relayed(conn, certificate, reason, when)


def _revocations(db: Database) -> int:
    with db.read() as conn:
        query = select(func.count()).select_from(upstream_revocations)
        count: int = conn.execute(query).scalar_one()
    return count


def test_only_a_relayed_certificate_is_queued_for_its_upstream(
    db: Database, org_id: int, account_id: str
) -> None:
    _certificate(db, account_id, org_id, "cert-1", "private")
    _certificate(db, account_id, org_id, "cert-2", f"upstream:{UPSTREAM}")
    assert not _revoke(db, "cert-1")
    assert _revocations(db) == 0
    with db.read() as conn:
        assert revocations.state_of(conn, "cert-1") is None
    assert _revoke(db, "cert-2", reason=4)
    assert _revocations(db) == 1
    with db.read() as conn:
        assert revocations.state_of(conn, "cert-2") == "queued"
        row = conn.execute(select(upstream_revocations)).one()
    assert (row.upstream, row.reason, row.attempts, row.next_attempt_at) == (UPSTREAM, 4, 0, NOW)


def test_a_due_revocation_carries_the_certificate(
    db: Database, org_id: int, account_id: str
) -> None:
    _certificate(db, account_id, org_id, "cert-1", f"upstream:{UPSTREAM}")
    _certificate(db, account_id, org_id, "cert-2", "upstream:other")
    assert _revoke(db, "cert-1", reason=1, when=at(100))
    assert _revoke(db, "cert-2", reason=5, when=at(101))
    with db.read() as conn:
        assert revocations.due(conn, at(99), 10) == []
        [pending] = revocations.due(conn, at(100), 10)
        both = revocations.due(conn, at(101), 10)
    assert pending == revocations.PendingRevocation(
        certificate_id="cert-1",
        upstream=UPSTREAM,
        reason=1,
        attempts=0,
        chain_pem="-----BEGIN CERTIFICATE-----\ncert-1\n-----END CERTIFICATE-----\n",
        serial_hex="5e1",
    )
    assert [(p.certificate_id, p.upstream, p.reason) for p in both] == [
        ("cert-1", UPSTREAM, 1),
        ("cert-2", "other", 5),
    ]


def test_a_revocation_is_claimed_and_finished_by_its_holder(
    db: Database, org_id: int, account_id: str
) -> None:
    _certificate(db, account_id, org_id, "cert-1", f"upstream:{UPSTREAM}")
    assert _revoke(db, "cert-1")
    with db.write() as conn:
        assert revocations.claim(conn, "cert-1", "p1", NOW, NOW + LEASE)
        assert not revocations.claim(conn, "cert-1", "p2", NOW, NOW + LEASE)
        assert revocations.due(conn, NOW, 10) == []
        [(pending, owner)] = revocations.leased(conn, NOW)
        assert (pending.certificate_id, owner) == ("cert-1", "p1")
        assert not revocations.finish(conn, "cert-1", "p2", "done", NOW)
        assert revocations.state_of(conn, "cert-1") == "queued"
        assert revocations.finish(conn, "cert-1", "p1", "done", NOW + timedelta(seconds=1))
        assert revocations.state_of(conn, "cert-1") == "done"
        assert not revocations.finish(conn, "cert-1", "p1", "failed", NOW), "once"
        assert revocations.state_of(conn, "cert-1") == "done"
        assert revocations.due(conn, NOW + timedelta(days=30), 10) == []
        assert revocations.leased(conn, NOW) == []
        row = conn.execute(select(upstream_revocations)).one()
    assert (row.attempts, row.lease_owner, row.lease_until, row.last_error) == (1, None, None, None)


def test_a_failed_revocation_is_rescheduled(db: Database, org_id: int, account_id: str) -> None:
    _certificate(db, account_id, org_id, "cert-1", f"upstream:{UPSTREAM}")
    assert _revoke(db, "cert-1", reason=3)
    retry_at = NOW + timedelta(minutes=1)
    with db.write() as conn:
        assert revocations.claim(conn, "cert-1", "p1", NOW, NOW + LEASE)
        assert not revocations.reschedule(conn, "cert-1", "p2", retry_at, ERROR, NOW)
        assert revocations.reschedule(conn, "cert-1", "p1", retry_at, ERROR, NOW)
        row = conn.execute(select(upstream_revocations)).one()
        assert (row.state, row.attempts, row.next_attempt_at, row.last_error) == (
            "queued",
            1,
            retry_at,
            ERROR,
        )
        assert (row.lease_owner, row.lease_until) == (None, None)
        assert revocations.due(conn, retry_at - timedelta(seconds=1), 10) == []
        [pending] = revocations.due(conn, retry_at, 10)
    assert (pending.certificate_id, pending.reason, pending.attempts) == ("cert-1", 3, 1)
    with db.write() as conn:  # the last attempt: given up
        assert revocations.claim(conn, "cert-1", "p2", retry_at, retry_at + LEASE)
        assert revocations.finish(conn, "cert-1", "p2", "failed", retry_at, error=ERROR)
        assert revocations.state_of(conn, "cert-1") == "failed"
        assert revocations.due(conn, retry_at + timedelta(days=1), 10) == []
