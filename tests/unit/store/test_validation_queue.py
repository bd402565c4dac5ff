"""The validation queue's store: queued work, claims, leases, their expiry and release.

A ``processing`` challenge is a queued validation. Claims are compare-and-set UPDATEs, so
of several claimers (processes, replicas) exactly one holds a validation at a time; a lease
that runs out (its process died) lets another claim it.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

from acmefleet.store import orders
from acmefleet.store import validation_queue as queue
from acmefleet.store.engine import Database, open_database
from tests.unit.store.builders import at, authorization_model

NOW = at(100)
LEASE = timedelta(seconds=10)


def _queue(db: Database, account_id: str, *numbers: int, since: int = 100) -> list[str]:
    """Authorizations ``authz-<n>`` whose http-01 challenge is processing since ``at(since)``."""
    with db.write() as conn:
        for number in numbers:
            orders.insert_authorization(
                conn, authorization_model(f"authz-{number}", account_id), at(1)
            )
            assert orders.set_challenge_state(
                conn,
                f"authz-{number}-http",
                expected="pending",
                status="processing",
                processing_since=at(since + number),
            )
    return [f"authz-{n}-http" for n in numbers]


def _queued(db: Database, when: datetime = NOW, limit: int = 100) -> list[str]:
    with db.read() as conn:
        return [c.id for c in queue.queued(conn, when, limit)]


def test_only_processing_challenges_are_queued_oldest_first(db: Database, account_id: str) -> None:
    with db.write() as conn:
        orders.insert_authorization(conn, authorization_model("authz-9", account_id), at(1))
    ids = _queue(db, account_id, 3, 1, 2)
    with db.write() as conn:  # one ended: no longer queued
        orders.set_challenge_state(conn, ids[1], expected="processing", status="valid")
    assert _queued(db) == ["authz-2-http", "authz-3-http"]
    assert _queued(db, limit=1) == ["authz-2-http"]


def test_a_claim_is_exclusive_until_its_lease_runs_out(db: Database, account_id: str) -> None:
    [challenge] = _queue(db, account_id, 1)
    with db.write() as conn:
        assert queue.claim(conn, challenge, "p1", NOW, NOW + LEASE)
        assert not queue.claim(conn, challenge, "p2", NOW, NOW + LEASE)
        assert not queue.claim(conn, challenge, "p1", NOW, NOW + LEASE), "not twice either"
    assert _queued(db) == []
    assert _queued(db, NOW + LEASE - timedelta(seconds=1)) == []
    # The lease has run out (p1 died): another process takes it over.
    later = NOW + LEASE
    assert _queued(db, later) == [challenge]
    with db.write() as conn:
        assert queue.claim(conn, challenge, "p2", later, later + LEASE)
        assert queue.lease_of(conn, challenge) == ("p2", later + LEASE)
        # The old owner can no longer renew it, nor release it.
        assert not queue.renew(conn, challenge, "p1", later + 2 * LEASE)
        assert queue.release(conn, [challenge], "p1") == 0
        assert queue.renew(conn, challenge, "p2", later + 2 * LEASE)
        assert queue.lease_of(conn, challenge) == ("p2", later + 2 * LEASE)


def test_an_outcome_ends_the_lease_and_the_queue_entry(db: Database, account_id: str) -> None:
    [challenge] = _queue(db, account_id, 1)
    with db.write() as conn:
        assert queue.claim(conn, challenge, "p1", NOW, NOW + LEASE)
        assert orders.set_challenge_state(
            conn, challenge, expected="processing", status="invalid", error={"type": "x"}
        )
        # Recorded once: a second outcome (another worker racing) changes nothing.
        assert not orders.set_challenge_state(
            conn, challenge, expected="processing", status="valid"
        )
        assert queue.lease_of(conn, challenge) == (None, None)
        assert not queue.renew(conn, challenge, "p1", NOW + LEASE)
        assert not queue.claim(conn, challenge, "p2", NOW + 2 * LEASE, NOW + 3 * LEASE)
    assert _queued(db, NOW + 2 * LEASE) == []
    with db.read() as conn:
        stored = orders.get_challenge(conn, challenge)
    assert stored is not None and stored.status == "invalid"


def test_a_released_validation_is_claimable_at_once(db: Database, account_id: str) -> None:
    ids = _queue(db, account_id, 1, 2)
    with db.write() as conn:
        for challenge in ids:
            assert queue.claim(conn, challenge, "p1", NOW, NOW + LEASE)
        assert queue.release(conn, ids, "p1") == 2
        assert queue.lease_of(conn, ids[0]) == (None, None)
    assert _queued(db) == ids
    with db.write() as conn:
        assert queue.claim(conn, ids[0], "p2", NOW, NOW + LEASE)


def test_racing_claimers_on_separate_engines_take_each_validation_once(
    db: Database, account_id: str
) -> None:
    """Eight claimers, each with its own engines (as separate processes have), grab all of
    forty queued validations at the same moment: every one is claimed exactly once."""
    ids = _queue(db, account_id, *range(1, 41))
    won: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def claimer(owner: str) -> None:
        database = open_database(db.writer.url.render_as_string(hide_password=False))
        try:
            barrier.wait()
            for challenge in ids:
                with database.write() as conn:
                    if queue.claim(conn, challenge, owner, NOW, NOW + LEASE):
                        with lock:
                            won[challenge] += 1
        finally:
            database.dispose()

    threads = [threading.Thread(target=claimer, args=(f"p{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won) == sorted(ids)
    assert set(won.values()) == {1}
    with db.read() as conn:
        owners = {queue.lease_of(conn, challenge)[0] for challenge in ids}
    assert None not in owners
