"""finalize on a public endpoint takes only CAA outcomes that cover every name still due.

The DNS work runs before the write transaction (``caa_policy.due`` then ``caa_policy.run``);
inside it, ``finalize_order`` lists the due names again. Here the outcomes are built by hand
(the DNS side is tested against knotd in tests/integration/test_caa.py), the database and the
CA are real: a forbidding outcome ends the order without signing; a missing, stale or failed
one refuses and writes nothing; an allowing one issues and records when CAA was checked.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from acmefleet.ca.hierarchy import create_hierarchy, load_authority
from acmefleet.ca.issuer import EmbeddedIssuer, IssuedCertificate, IssueRequest
from acmefleet.ca.profiles import DEFAULT_PROFILES
from acmefleet.clock import FixedClock
from acmefleet.config import EndpointConfig
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.jose.b64 import b64url_encode
from acmefleet.models import Account, Authorization, Challenge, Order
from acmefleet.policy import caa as caa_policy
from acmefleet.policy.orders import finalize_order
from acmefleet.store import orders as order_store
from acmefleet.store.engine import Database
from acmefleet.store.ids import new_id
from acmefleet.store.schema import certificates
from tests.unit import rows

NAME = "www.caa.example.net"
PUBLIC = EndpointConfig(
    "public",
    "public",
    "private",
    ("private-server",),
    "private-server",
    caa_identities=("acmefleet.test",),
)


class CountingIssuer:
    def __init__(self, inner: EmbeddedIssuer) -> None:
        self.inner = inner
        self.signed = 0

    def issue(self, request: IssueRequest) -> IssuedCertificate:
        self.signed += 1
        return self.inner.issue(request)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedIssuer:
    ca_dir: Path = tmp_path_factory.mktemp("ca")
    create_hierarchy(ca_dir, "private", clock=FixedClock(rows.NOW - timedelta(hours=1)))
    return EmbeddedIssuer(
        load_authority(ca_dir, "private"), clock=FixedClock(rows.NOW), pki_base_url="http://p.test"
    )


def _csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return b64url_encode(csr.public_bytes(serialization.Encoding.DER))


def _ready(database: Database) -> tuple[Account, Order]:
    """A ready order whose one name a challenge proved, CAA never checked."""
    with database.write() as conn:
        account = rows.account(conn, endpoint="public")
        authz_id = new_id()
        challenge = Challenge(new_id(), authz_id, "http-01", "tok", "valid", rows.NOW, None)
        authz = Authorization(
            authz_id,
            account.id,
            Identifier("dns", NAME),
            False,
            "valid",
            rows.NOW + timedelta(days=1),
            (challenge,),
        )
        order_store.insert_authorization(conn, authz, rows.NOW)
        order_store.set_challenge_state(
            conn, challenge.id, expected="pending", status="valid", validated_at=rows.NOW
        )
        order = rows.order(conn, account, authz)
    with database.read() as conn:
        stored = order_store.get_order(conn, order.id)
    assert stored is not None
    return account, stored


def _finalize(
    database: Database,
    account: Account,
    order: Order,
    issuer: CountingIssuer,
    outcomes: list[caa_policy.Outcome],
) -> Order:
    with database.write() as conn:
        return finalize_order(
            conn,
            endpoint=PUBLIC,
            account=account,
            account_spki=b"not the csr key",
            order=order,
            payload={"csr": _csr()},
            issuer=issuer,
            profiles=DEFAULT_PROFILES,
            now=rows.NOW,
            caa_outcomes=outcomes,
        )


def _due(database: Database, account: Account, order: Order) -> caa_policy.DueCheck:
    with database.read() as conn:
        [check] = caa_policy.due(conn, PUBLIC, account, order, rows.NOW)
    assert (check.name, check.wildcard, check.method) == (NAME, False, "http-01")
    return check


def _stored(database: Database, order: Order) -> Order:
    with database.read() as conn:
        stored = order_store.get_order(conn, order.id)
    assert stored is not None
    return stored


def _certificates(database: Database) -> int:
    with database.read() as conn:
        return int(conn.execute(select(func.count()).select_from(certificates)).scalar_one())


def test_an_allowing_check_issues_and_is_recorded(
    database: Database, embedded: EmbeddedIssuer
) -> None:
    account, order = _ready(database)
    started = rows.NOW - timedelta(seconds=2)
    outcome = caa_policy.Outcome(_due(database, account, order), started, None)
    issuer = CountingIssuer(embedded)
    done = _finalize(database, account, order, issuer, [outcome])
    assert done.finalization == "valid" and issuer.signed == 1
    assert _stored(database, order).authorizations[0].caa_checked_at == started


def test_a_forbidding_check_ends_the_order_unsigned(
    database: Database, embedded: EmbeddedIssuer
) -> None:
    account, order = _ready(database)
    forbids = AcmeError(ProblemType.CAA, "the CAA records at x forbid issuance", status=403)
    outcome = caa_policy.Outcome(_due(database, account, order), rows.NOW, forbids)
    issuer = CountingIssuer(embedded)
    done = _finalize(database, account, order, issuer, [outcome])
    assert done.finalization == "invalid" and issuer.signed == 0
    stored = _stored(database, order)
    assert stored.status(rows.NOW) == "invalid"
    assert stored.error is not None and stored.error["type"].endswith(":caa")
    assert _certificates(database) == 0


@pytest.mark.parametrize("case", ["missing", "stale", "failed"])
def test_no_usable_check_refuses_and_writes_nothing(
    database: Database, embedded: EmbeddedIssuer, case: str
) -> None:
    account, order = _ready(database)
    check = _due(database, account, order)
    outcomes = {
        "missing": [],
        "stale": [caa_policy.Outcome(check, rows.NOW - timedelta(hours=8), None)],
        "failed": [
            caa_policy.Outcome(check, rows.NOW, AcmeError(ProblemType.DNS, "SERVFAIL for CAA"))
        ],
    }[case]
    issuer = CountingIssuer(embedded)
    with pytest.raises(AcmeError) as raised:
        _finalize(database, account, order, issuer, outcomes)
    expected = ProblemType.DNS if case == "failed" else ProblemType.SERVER_INTERNAL
    assert raised.value.type is expected
    assert issuer.signed == 0 and _certificates(database) == 0
    stored = _stored(database, order)
    assert stored.finalization == "none" and stored.status(rows.NOW) == "ready"
    assert stored.authorizations[0].caa_checked_at is None


def test_a_recent_check_is_not_made_again(database: Database, embedded: EmbeddedIssuer) -> None:
    account, order = _ready(database)
    with database.write() as conn:
        order_store.set_caa_checked(conn, order.authorizations[0].id, rows.NOW - timedelta(hours=7))
    order = _stored(database, order)
    with database.read() as conn:
        assert caa_policy.due(conn, PUBLIC, account, order, rows.NOW) == []
    done = _finalize(database, account, order, CountingIssuer(embedded), [])
    assert done.finalization == "valid"
