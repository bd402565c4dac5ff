"""policy.crl_publication: one CRL per issuing CA, published for every worker and replica.

The CRL is stored in the database and every process serves those bytes; a revocation
committed anywhere makes the next fetch (or housekeeping round) publish a new one, numbers
only grow, and two processes racing publish one CRL per number.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509

from acmefleet.ca.hierarchy import Authority, create_hierarchy, load_authority
from acmefleet.clock import FixedClock
from acmefleet.errors import StoreUnavailable
from acmefleet.policy import crl_publication
from acmefleet.policy.crl_publication import (
    CLOCK_TOLERANCE,
    CRL_VALIDITY,
    REISSUE_AFTER,
    Served,
    current_crl,
    publish_stale,
)
from acmefleet.store import accounts, certificates, crls, orgs
from acmefleet.store.engine import Database
from tests.unit.store.builders import account_model, at, certificate_model


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    ca_dir: Path = tmp_path_factory.mktemp("ca")
    create_hierarchy(ca_dir, "private", clock=FixedClock(at(0)))
    return load_authority(ca_dir, "private")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at(100))


@pytest.fixture
def db(database: Database) -> Database:
    return database


@pytest.fixture
def org_id(db: Database) -> int:
    with db.write() as conn:
        return orgs.create_org(conn, "acme", at(1)).id


@pytest.fixture
def account_id(db: Database, org_id: int) -> str:
    with db.write() as conn:
        accounts.insert_account(conn, account_model(org_id))
    return "acct-1"


def _issue(db: Database, account_id: str, org_id: int, cert_id: str, serial: str) -> None:
    with db.write() as conn:
        certificates.insert_certificate(
            conn, certificate_model(cert_id, account_id, org_id, serial), at(1)
        )


def _revoke(db: Database, cert_id: str, clock: FixedClock, reason: int = 4) -> None:
    with db.write() as conn:
        assert certificates.mark_revoked(conn, cert_id, clock.now(), reason)


def _serials(der: bytes) -> dict[int, x509.ReasonFlags | None]:
    crl = x509.load_der_x509_crl(der)
    found: dict[int, x509.ReasonFlags | None] = {}
    for entry in crl:
        try:
            found[entry.serial_number] = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            found[entry.serial_number] = None
    return found


def test_the_first_fetch_publishes_and_the_next_ones_serve_the_same_bytes(
    db: Database, authority: Authority, clock: FixedClock
) -> None:
    first = current_crl(db, authority, "private", clock).crl
    clock.advance(timedelta(minutes=5))
    again = current_crl(db, authority, "private", clock).crl
    assert again == first
    crl = x509.load_der_x509_crl(first.der)
    assert crl.is_signature_valid(authority.issuer_key.public_key())
    assert crl.last_update_utc == at(100)
    assert crl.next_update_utc == at(100) + CRL_VALIDITY
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == first.number == int(at(100).timestamp() * 1000)
    with db.read() as conn:
        assert crls.published(conn, "private") == first


def test_a_committed_revocation_is_in_the_next_fetch_under_a_larger_number(
    db: Database, authority: Authority, clock: FixedClock, org_id: int, account_id: str
) -> None:
    _issue(db, account_id, org_id, "c1", "7e01")
    before = current_crl(db, authority, "private", clock).crl
    assert _serials(before.der) == {}
    _revoke(db, "c1", clock)  # in the same second: the mark still moved
    after = current_crl(db, authority, "private", clock).crl
    assert after.number == before.number + 1
    assert _serials(after.der) == {0x7E01: x509.ReasonFlags.superseded}
    assert after.mark == (1, at(100))


def test_rolled_back_revocations_publish_nothing(
    db: Database, authority: Authority, clock: FixedClock, org_id: int, account_id: str
) -> None:
    _issue(db, account_id, org_id, "c1", "7e01")
    published = current_crl(db, authority, "private", clock).crl
    with pytest.raises(RuntimeError), db.write() as conn:
        certificates.mark_revoked(conn, "c1", clock.now(), 1)
        raise RuntimeError("the command failed after the revocation")
    clock.advance(timedelta(minutes=1))
    assert current_crl(db, authority, "private", clock).crl == published


def test_housekeeping_republishes_on_schedule_and_after_an_unfetched_revocation(
    db: Database, authority: Authority, clock: FixedClock, org_id: int, account_id: str
) -> None:
    authorities = {"private": authority}
    assert publish_stale(db, authorities, clock) == ["private"]  # nothing published yet
    assert publish_stale(db, authorities, clock) == []
    clock.advance(REISSUE_AFTER - timedelta(seconds=1))
    assert publish_stale(db, authorities, clock) == []
    clock.advance(timedelta(seconds=1))
    assert publish_stale(db, authorities, clock) == ["private"]
    _issue(db, account_id, org_id, "c1", "7e01")
    _revoke(db, "c1", clock, reason=1)
    assert publish_stale(db, authorities, clock) == ["private"]
    with db.read() as conn:
        stored = crls.published(conn, "private")
    assert stored is not None
    assert _serials(stored.der) == {0x7E01: x509.ReasonFlags.key_compromise}


def test_a_lost_race_serves_the_winners_crl_and_each_number_names_one_crl(
    db: Database,
    authority: Authority,
    clock: FixedClock,
    org_id: int,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another replica publishes between this one's read and its compare-and-set."""
    _issue(db, account_id, org_id, "c1", "7e01")
    current_crl(db, authority, "private", clock)
    _revoke(db, "c1", clock)
    real_build = crl_publication._build
    winners: list[crls.PublishedCrl] = []

    def build_while_another_publishes(*args: object, **kwargs: object) -> crls.PublishedCrl:
        if not winners:
            monkeypatch.setattr(crl_publication, "_build", real_build)
            winners.append(current_crl(db, authority, "private", clock).crl)  # the other replica
        return real_build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(crl_publication, "_build", build_while_another_publishes)
    served = current_crl(db, authority, "private", clock).crl
    assert served == winners[0]
    assert _serials(served.der) == {0x7E01: x509.ReasonFlags.superseded}


def test_concurrent_fetches_after_a_revocation_agree_on_every_number(
    db: Database, authority: Authority, clock: FixedClock, org_id: int, account_id: str
) -> None:
    _issue(db, account_id, org_id, "c1", "7e01")
    current_crl(db, authority, "private", clock)
    _revoke(db, "c1", clock)
    served: list[crls.PublishedCrl] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            served.append(current_crl(db, authority, "private", clock).crl)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({crl.number for crl in served}) == len({crl.der for crl in served}) == 1
    assert all(0x7E01 in _serials(crl.der) for crl in served)


def test_numbers_grow_past_a_published_number_ahead_of_this_clock(
    db: Database, authority: Authority, clock: FixedClock, org_id: int, account_id: str
) -> None:
    """A replica with a fast clock published; this one's next CRL still gets a larger number,
    and the fast replica's thisUpdate ahead of this clock counts as fresh, not stale."""
    fast = FixedClock(clock.now() + timedelta(minutes=3))
    ahead = current_crl(db, authority, "private", fast).crl
    assert current_crl(db, authority, "private", clock).crl == ahead
    _issue(db, account_id, org_id, "c1", "7e01")
    _revoke(db, "c1", clock)
    assert current_crl(db, authority, "private", clock).crl.number == ahead.number + 1


class WriterAway:
    """The database with its writer unreachable: reads work, every write fails."""

    def __init__(self, db: Database) -> None:
        self.read = db.read

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        raise StoreUnavailable("the writer is away")
        yield  # pragma: no cover - never reached


def test_with_the_writer_away_the_published_crl_serves_until_its_next_update(
    db: Database, authority: Authority, clock: FixedClock, org_id: int, account_id: str
) -> None:
    published = current_crl(db, authority, "private", clock).crl
    _issue(db, account_id, org_id, "c1", "7e01")
    _revoke(db, "c1", clock)
    away = cast(Database, WriterAway(db))
    served = current_crl(away, authority, "private", clock)
    assert served == Served(published, published=False, held_back=True)
    clock.advance(CRL_VALIDITY)
    with pytest.raises(StoreUnavailable):
        current_crl(away, authority, "private", clock)


def test_a_crl_from_a_clock_far_ahead_is_replaced_not_served(
    db: Database, authority: Authority, clock: FixedClock
) -> None:
    """Relying parties reject a CRL whose thisUpdate is in their future: one published by a
    replica whose clock is far ahead is rebuilt by the next fetch, with a larger number."""
    far = FixedClock(clock.now() + CLOCK_TOLERANCE + timedelta(seconds=1))
    ahead = current_crl(db, authority, "private", far).crl
    served = current_crl(db, authority, "private", clock)
    assert served.published and served.crl.number == ahead.number + 1
    assert served.crl.this_update == clock.now()


def test_held_back_a_process_serves_the_valid_crl_without_signing(
    db: Database,
    authority: Authority,
    clock: FixedClock,
    org_id: int,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a refused write the server holds back (acme/pki.py, UNWRITABLE_HOLD): the
    published CRL is served as it is, nothing is signed or written; once nothing valid is
    left, it publishes all the same."""
    published = current_crl(db, authority, "private", clock).crl
    _issue(db, account_id, org_id, "c1", "7e01")
    _revoke(db, "c1", clock)

    def no_signing(*_args: object, **_kwargs: object) -> crls.PublishedCrl:
        raise AssertionError("signed a CRL while held back")

    monkeypatch.setattr(crl_publication, "_build", no_signing)
    held = current_crl(db, authority, "private", clock, may_publish=False)
    assert held == Served(published, published=False, held_back=True)
    monkeypatch.undo()
    clock.advance(CRL_VALIDITY)
    fresh = current_crl(db, authority, "private", clock, may_publish=False)
    assert fresh.published and 0x7E01 in _serials(fresh.crl.der)
