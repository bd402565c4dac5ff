"""The relay's policy (``policy.relay``): backoff, problems, the leaf check, and its writes.

The pure functions are checked on their own, the leaf check on real certificates made with
``cryptography``; ``complete``, ``fail`` and ``retry_later`` run against the migrated
database (``tests/unit/conftest.py``, both backends) with a relayed order claimed as the
relay's worker claims it, and change nothing once another process holds the lease.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection, func, select

from acmefleet.jose.b64 import b64url_decode, b64url_encode
from acmefleet.models import Account, Order, RelayedOrder
from acmefleet.policy import relay
from acmefleet.policy.relay import RelayedCertificateMismatch, RelayTo
from acmefleet.store import accounts, audit, orgs
from acmefleet.store import certificates as cert_store
from acmefleet.store import orders as order_store
from acmefleet.store import upstream_orders as relay_store
from acmefleet.store.engine import Database
from acmefleet.store.schema import audit_events, certificates, upstream_orders
from acmefleet.upstream.errors import (
    Subproblem,
    UpstreamOrderFailed,
    UpstreamProblem,
    UpstreamUnavailable,
)
from tests.unit.store.builders import account_model, at, authorization_model, order_model

ACME = "urn:ietf:params:acme:error:"
# As long as an upstream's name may be (config: 23 characters): "upstream:<name>" must fit
# the certificates' ca_level column.
UPSTREAM = "letsencrypt-staging-eu1"
ENDPOINT = "public"
NAMES = ["www.example.com", "api.example.com"]
NOW = at(100)
LEASE = timedelta(seconds=30)
CERT_URL = "https://upstream.test/cert/1"
ORDER_URL = "https://upstream.test/order/1"


# --- certificates ------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issuer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Upstream Test R1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issuer(key, cert)


@pytest.fixture(scope="module")
def csr_key() -> ec.EllipticCurvePrivateKey:
    return _key()


def _csr_der(key: ec.EllipticCurvePrivateKey, names: Sequence[str] = NAMES) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def _chain(
    issuer: Issuer,
    key: ec.EllipticCurvePrivateKey,
    san: Sequence[x509.GeneralName] | None,
    serial: int = 0x5EED_0001_F00D,
    common_name: str | None = None,
) -> str:
    """A leaf for ``key`` naming ``san`` (None: no SAN extension), its subject's CN
    ``common_name`` (None: an empty subject, as the CA/B BR prefer), then its issuer."""
    subject = [] if common_name is None else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=90))
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    leaf = builder.sign(issuer.key, hashes.SHA256())
    return "".join(
        c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in (leaf, issuer.cert)
    )


def _dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(n) for n in names]


# --- retry_delay -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(0, 5), (1, 5), (2, 10), (3, 20), (4, 40), (5, 80), (7, 320), (8, 600), (9, 600)],
)
def test_the_backoff_doubles_from_five_seconds_to_ten_minutes(attempts: int, seconds: int) -> None:
    assert relay.retry_delay(attempts, None) == timedelta(seconds=seconds)


@pytest.mark.parametrize("attempts", [17, 18, 64, 1000, 10**9, sys.maxsize])
def test_a_huge_attempt_count_stays_at_the_cap(attempts: int) -> None:
    assert relay.retry_delay(attempts, None) == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("attempts", "retry_after", "expected"),
    [
        (1, 120, timedelta(seconds=120)),  # the upstream asks for longer than the backoff
        (1, 2.5, timedelta(seconds=5)),  # shorter: the backoff stands
        (3, 20, timedelta(seconds=20)),
        (3, 1, timedelta(seconds=20)),
        (1, 0, timedelta(seconds=5)),
        (20, 86400, timedelta(days=1)),  # longer than the cap: Retry-After still wins
    ],
)
def test_the_backoff_is_never_sooner_than_retry_after(
    attempts: int, retry_after: float, expected: timedelta
) -> None:
    assert relay.retry_delay(attempts, retry_after) == expected


# --- upstream_problem --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rejectedIdentifier", "caa", "dns", "unauthorized"])
def test_the_upstreams_verdict_on_a_name_is_the_local_verdict(kind: str) -> None:
    error = UpstreamProblem(ACME + kind, "no names under .test", status=400)
    assert relay.upstream_problem(error, UPSTREAM) == {
        "type": ACME + kind,
        "detail": f"the upstream CA {UPSTREAM} did not issue: no names under .test",
        "status": 403,
        "subproblems": [{"type": ACME + kind, "detail": "no names under .test"}],
    }


@pytest.mark.parametrize(
    "type_",
    [ACME + "rateLimited", ACME + "serverInternal", ACME + "badCSR", "about:blank"],
)
def test_any_other_upstream_problem_is_a_local_internal_error(type_: str) -> None:
    error = UpstreamProblem(type_, "too many certificates", status=429, retry_after=3600)
    problem = relay.upstream_problem(error, UPSTREAM)
    assert problem == {
        "type": ACME + "serverInternal",
        "detail": f"the upstream CA {UPSTREAM} did not issue: too many certificates",
        "status": 500,
        "subproblems": [{"type": type_, "detail": "too many certificates"}],
    }


def test_the_upstreams_subproblems_are_carried_with_their_identifiers() -> None:
    error = UpstreamProblem(
        ACME + "rejectedIdentifier",
        "some names are refused",
        status=400,
        subproblems=(
            Subproblem(ACME + "rejectedIdentifier", "a blocked name", "www.example.com"),
            Subproblem(ACME + "caa", "CAA forbids", "api.example.com"),
            Subproblem(ACME + "malformed", "about the request", None),
        ),
    )
    problem = relay.upstream_problem(error, UPSTREAM)
    assert problem["type"] == ACME + "rejectedIdentifier"
    assert problem["subproblems"] == [
        {"type": ACME + "rejectedIdentifier", "detail": "some names are refused"},
        {
            "type": ACME + "rejectedIdentifier",
            "detail": "a blocked name",
            "identifier": {"type": "dns", "value": "www.example.com"},
        },
        {
            "type": ACME + "caa",
            "detail": "CAA forbids",
            "identifier": {"type": "dns", "value": "api.example.com"},
        },
        {"type": ACME + "malformed", "detail": "about the request"},
    ]


def test_a_failed_upstream_order_is_judged_by_its_problem() -> None:
    inner = UpstreamProblem(
        ACME + "caa",
        "CAA record forbids issuance",
        status=403,
        subproblems=(Subproblem(ACME + "caa", "forbidden", "www.example.com"),),
    )
    failed = UpstreamOrderFailed("the upstream's order is invalid", inner)
    assert relay.upstream_problem(failed, UPSTREAM) == relay.upstream_problem(inner, UPSTREAM)
    assert relay.upstream_problem(failed, UPSTREAM)["type"] == ACME + "caa"


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailable("no answer within 30 s"),
        UpstreamOrderFailed("no answer within 30 s"),  # without a problem document
    ],
)
def test_an_upstream_failure_without_a_problem_is_internal(error: Any) -> None:
    assert relay.upstream_problem(error, UPSTREAM) == {
        "type": ACME + "serverInternal",
        "detail": f"the upstream CA {UPSTREAM} did not issue: no answer within 30 s",
        "status": 500,
    }


# --- retry_after_for ---------------------------------------------------------------------


def _relayed_at(next_attempt_at: datetime) -> RelayedOrder:
    return RelayedOrder(
        order_id="order-1",
        upstream=UPSTREAM,
        csr="csr",
        state="queued",
        upstream_order_url=None,
        certificate_url=None,
        attempts=1,
        next_attempt_at=next_attempt_at,
        give_up_at=NOW + timedelta(hours=6),
        last_error=None,
        lease_owner=None,
        lease_until=None,
        created_at=NOW - timedelta(minutes=1),
    )


def test_a_client_polls_soon_while_the_relay_is_working() -> None:
    assert relay.retry_after_for(None, NOW) == 2
    assert relay.retry_after_for(_relayed_at(NOW), NOW) == 2
    assert relay.retry_after_for(_relayed_at(NOW - timedelta(minutes=5)), NOW) == 2


@pytest.mark.parametrize("wait", [0.2, 1, 9.5, 10, 599, 3599])
def test_a_client_waits_until_the_next_attempt(wait: float) -> None:
    seconds = relay.retry_after_for(_relayed_at(NOW + timedelta(seconds=wait)), NOW)
    assert wait <= seconds <= wait + 1


def test_a_client_waits_an_hour_at_most() -> None:
    assert relay.retry_after_for(_relayed_at(NOW + timedelta(seconds=3600)), NOW) == 3600
    assert relay.retry_after_for(_relayed_at(NOW + timedelta(days=2)), NOW) == 3600


# --- check_relayed_leaf ------------------------------------------------------------------


def test_the_leaf_for_the_csrs_key_and_exactly_its_names_passes(
    issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    chain = _chain(issuer, csr_key, _dns(*reversed(NAMES)), serial=0xABCDEF)
    leaf = relay.check_relayed_leaf(_csr_der(csr_key), NAMES, chain)
    assert leaf.serial_number == 0xABCDEF, "the leaf, not its issuer"


@pytest.mark.parametrize(
    ("order_names", "leaf_names"),
    [
        (["WWW.Example.COM", "api.example.com"], NAMES),
        (NAMES, ["www.EXAMPLE.com", "API.example.com"]),
    ],
)
def test_names_are_compared_without_case(
    issuer: Issuer,
    csr_key: ec.EllipticCurvePrivateKey,
    order_names: list[str],
    leaf_names: list[str],
) -> None:
    chain = _chain(issuer, csr_key, _dns(*leaf_names))
    relay.check_relayed_leaf(_csr_der(csr_key), order_names, chain)


def test_a_leaf_for_another_key_is_refused(
    issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    chain = _chain(issuer, _key(), _dns(*NAMES))
    with pytest.raises(RelayedCertificateMismatch, match="another key"):
        relay.check_relayed_leaf(_csr_der(csr_key), NAMES, chain)


@pytest.mark.parametrize(
    "san",
    [
        pytest.param(_dns(*NAMES, "extra.example.com"), id="an-extra-name"),
        pytest.param(_dns(NAMES[0]), id="a-missing-name"),
        pytest.param(_dns(NAMES[0], NAMES[0]), id="a-name-twice-for-two"),
        pytest.param(_dns("www.example.org", NAMES[1]), id="another-name"),
        pytest.param(
            [*_dns(*NAMES), x509.IPAddress(ipaddress.ip_address("192.0.2.7"))], id="an-ip"
        ),
        pytest.param([*_dns(*NAMES), x509.RFC822Name("pki@example.com")], id="an-email"),
        pytest.param(
            [*_dns(*NAMES), x509.UniformResourceIdentifier("https://example.com/")], id="a-uri"
        ),
        pytest.param(None, id="no-san"),
    ],
)
def test_a_leaf_for_other_names_is_refused(
    issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey, san: list[x509.GeneralName] | None
) -> None:
    chain = _chain(issuer, csr_key, san)
    with pytest.raises(RelayedCertificateMismatch):
        relay.check_relayed_leaf(_csr_der(csr_key), NAMES, chain)


def test_a_common_name_of_the_order_passes(
    issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    chain = _chain(issuer, csr_key, _dns(*NAMES), common_name=NAMES[1].upper())
    relay.check_relayed_leaf(_csr_der(csr_key), NAMES, chain)


def test_a_common_name_outside_the_order_is_refused(
    issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    chain = _chain(issuer, csr_key, _dns(*NAMES), common_name="leaf")
    with pytest.raises(RelayedCertificateMismatch, match="another common name"):
        relay.check_relayed_leaf(_csr_der(csr_key), NAMES, chain)


def test_a_mismatch_is_an_upstream_failure_that_will_not_pass(
    issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(RelayedCertificateMismatch) as caught:
        relay.check_relayed_leaf(_csr_der(csr_key), NAMES, _chain(issuer, _key(), _dns(*NAMES)))
    assert not caught.value.transient
    assert relay.upstream_problem(caught.value, UPSTREAM)["type"] == ACME + "serverInternal"


# --- complete, fail, retry_later against the database -------------------------------------


@dataclass(frozen=True)
class Processing:
    """An order in ``processing``, relayed to UPSTREAM and claimed by the lease's holder."""

    account: Account
    order: Order
    relayed: RelayedOrder


@pytest.fixture
def db(database: Database) -> Database:
    return database


def _processing(db: Database, csr_der: bytes, holder: str) -> Processing:
    with db.write() as conn:
        orgs.create_org(conn, "other", at(0))
        org = orgs.create_org(conn, "acme", at(1))
        account = account_model(org.id, endpoint=ENDPOINT)
        accounts.insert_account(conn, account)
        authzs = tuple(
            authorization_model(f"authz-{n}", account.id, name, stored_status="valid")
            for n, name in enumerate(NAMES)
        )
        for authz in authzs:
            order_store.insert_authorization(conn, authz, at(2))
        order = order_model("order-1", account.id, authzs, finalization="processing")
        order_store.insert_order(conn, order, at(3))
        relayed = relay.queue(
            conn, order, b64url_encode(csr_der), RelayTo(UPSTREAM, timedelta(hours=6)), at(4)
        )
        assert relay_store.claim(conn, relayed.order_id, holder, NOW, NOW + LEASE)
        assert relay_store.record_placed(conn, relayed.order_id, holder, ORDER_URL, NOW)
    return Processing(account, order, relayed)


def _relay_row(conn: Connection) -> dict[str, Any]:
    query = select(upstream_orders).where(upstream_orders.c.order_id == "order-1")
    return dict(conn.execute(query).one()._mapping)


def _count(conn: Connection, table: Any) -> int:
    count: int = conn.execute(select(func.count()).select_from(table)).scalar_one()
    return count


def _snapshot(db: Database) -> tuple[Any, ...]:
    """All the relay's outcomes could change: its row, the order, certificates, the audit."""
    with db.read() as conn:
        return (
            _relay_row(conn),
            order_store.get_order(conn, "order-1"),
            _count(conn, certificates),
            _count(conn, audit_events),
        )


def _complete(db: Database, setup: Processing, owner: str, chain: str) -> bool:
    leaf = relay.check_relayed_leaf(
        b64url_decode(setup.relayed.csr), [i.value for i in setup.order.identifiers], chain
    )
    with db.write() as conn:
        return relay.complete(
            conn,
            setup.relayed,
            owner,
            order=setup.order,
            account=setup.account,
            endpoint=ENDPOINT,
            chain_pem=chain,
            leaf=leaf,
            upstream_order_url=ORDER_URL,
            certificate_url=CERT_URL,
            now=NOW + timedelta(seconds=5),
        )


def test_complete_stores_the_upstreams_certificate_as_the_orders(
    db: Database, issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    setup = _processing(db, _csr_der(csr_key), holder="me")
    serial = 0x0F_DEAD_BEEF_0042
    chain = _chain(issuer, csr_key, _dns(*NAMES), serial=serial)
    done = NOW + timedelta(seconds=5)
    assert _complete(db, setup, "me", chain)
    leaf = x509.load_pem_x509_certificates(chain.encode("ascii"))[0]
    with db.read() as conn:
        order = order_store.get_order(conn, "order-1")
        assert order is not None and order.finalization == "valid"
        assert order.certificate_id is not None and order.error is None
        stored = cert_store.get_certificate(conn, order.certificate_id)
        assert stored is not None
        assert cert_store.find_by_serial(conn, format(serial, "x")) == stored
        relayed = relay_store.get_relayed(conn, "order-1")
        events = audit.list_events(conn)
        assert audit.verify_chain(conn).intact
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert dataclasses.asdict(stored) == {
        "id": order.certificate_id,
        "serial_hex": "fdeadbeef0042",
        "account_id": setup.account.id,
        "order_id": "order-1",
        "org_id": setup.account.org_id,
        "endpoint": ENDPOINT,
        "ca_level": f"upstream:{UPSTREAM}",
        "profile": setup.order.profile,
        "names": NAMES,
        "not_before": NOW - timedelta(hours=1),
        "not_after": NOW + timedelta(days=90),
        "chain_pem": chain,
        "spki_sha256": hashlib.sha256(spki).hexdigest(),
        "revoked_at": None,
        "revocation_reason": None,
    }
    assert relayed is not None
    assert (relayed.state, relayed.certificate_url, relayed.upstream_order_url) == (
        "valid",
        CERT_URL,
        ORDER_URL,
    )
    assert (relayed.lease_owner, relayed.lease_until, relayed.attempts) == (None, None, 1)
    [event] = events
    assert (event["at"], event["actor"], event["action"], event["target"]) == (
        done,
        f"upstream:{UPSTREAM}",
        "certificate.issue",
        "fdeadbeef0042",
    )
    assert event["details"] == {
        "names": NAMES,
        "order": "order-1",
        "endpoint": ENDPOINT,
        "upstream": UPSTREAM,
        "upstream_order": ORDER_URL,
        "issuer": "CN=Upstream Test R1",
    }


def test_complete_under_a_lost_lease_changes_nothing(
    db: Database, issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    setup = _processing(db, _csr_der(csr_key), holder="someone-else")
    before = _snapshot(db)
    assert not _complete(db, setup, "me", _chain(issuer, csr_key, _dns(*NAMES)))
    assert _snapshot(db) == before
    assert before[1].finalization == "processing" and before[2:] == (0, 0)


def test_complete_refuses_an_order_that_left_processing_and_writes_nothing(
    db: Database, issuer: Issuer, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    setup = _processing(db, _csr_der(csr_key), holder="me")
    with db.write() as conn:  # something else ended the order under the relay's lease
        assert order_store.set_finalization(
            conn, "order-1", expected="processing", finalization="invalid", error={"type": "x"}
        )
    before = _snapshot(db)
    with pytest.raises(RuntimeError, match="left processing"):
        _complete(db, setup, "me", _chain(issuer, csr_key, _dns(*NAMES)))
    assert _snapshot(db) == before, "the whole transaction is rolled back"


def _fail(db: Database, setup: Processing, owner: str, error: Any) -> bool:
    with db.write() as conn:
        return relay.fail(conn, setup.relayed, owner, error, NOW + timedelta(seconds=5))


def test_fail_ends_the_order_invalid_with_the_upstreams_problem(
    db: Database, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    setup = _processing(db, _csr_der(csr_key), holder="me")
    error = UpstreamProblem(
        ACME + "rejectedIdentifier",
        "policy forbids issuing for name",
        status=400,
        subproblems=(Subproblem(ACME + "rejectedIdentifier", "forbidden", "api.example.com"),),
    )
    problem = relay.upstream_problem(error, UPSTREAM)
    assert _fail(db, setup, "me", error)
    with db.read() as conn:
        order = order_store.get_order(conn, "order-1")
        relayed = relay_store.get_relayed(conn, "order-1")
        [event] = audit.list_events(conn)
        assert _count(conn, certificates) == 0
    assert order is not None
    assert (order.finalization, order.error, order.certificate_id) == ("invalid", problem, None)
    assert relayed is not None
    assert (relayed.state, relayed.last_error, relayed.certificate_url) == (
        "invalid",
        problem,
        None,
    )
    assert (relayed.lease_owner, relayed.lease_until) == (None, None)
    assert (event["actor"], event["action"], event["target"]) == (
        f"upstream:{UPSTREAM}",
        "order.relay-failed",
        "order-1",
    )
    assert event["details"] == {"upstream": UPSTREAM, "detail": problem["detail"]}


def test_fail_under_a_lost_lease_changes_nothing(
    db: Database, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    setup = _processing(db, _csr_der(csr_key), holder="someone-else")
    before = _snapshot(db)
    assert not _fail(db, setup, "me", UpstreamOrderFailed("the upstream's order is invalid"))
    assert _snapshot(db) == before


@pytest.mark.parametrize(("retry_after", "wait"), [(None, 5), (90, 90)])
def test_retry_later_counts_the_attempt_and_sets_the_next(
    db: Database, csr_key: ec.EllipticCurvePrivateKey, retry_after: int | None, wait: int
) -> None:
    setup = _processing(db, _csr_der(csr_key), holder="me")
    error = UpstreamProblem(ACME + "rateLimited", "slow down", status=429, retry_after=retry_after)
    with db.write() as conn:
        due = relay.retry_later(conn, setup.relayed, "me", error, NOW)
    assert due == NOW + timedelta(seconds=wait)
    with db.read() as conn:
        relayed = relay_store.get_relayed(conn, "order-1")
        order = order_store.get_order(conn, "order-1")
        assert relay_store.due(conn, due - timedelta(seconds=1), 10) == []
        assert [r.order_id for r in relay_store.due(conn, due, 10)] == ["order-1"]
    assert relayed is not None and order is not None
    assert (relayed.state, relayed.attempts, relayed.next_attempt_at) == ("queued", 1, due)
    assert relayed.last_error == relay.upstream_problem(error, UPSTREAM)
    assert (relayed.lease_owner, relayed.lease_until) == (None, None)
    assert order.finalization == "processing", "the order waits for the next attempt"


def test_retry_later_under_a_lost_lease_changes_nothing(
    db: Database, csr_key: ec.EllipticCurvePrivateKey
) -> None:
    setup = _processing(db, _csr_der(csr_key), holder="someone-else")
    before = _snapshot(db)
    with db.write() as conn:
        assert (
            relay.retry_later(conn, setup.relayed, "me", UpstreamUnavailable("down"), NOW) is None
        )
    assert _snapshot(db) == before
