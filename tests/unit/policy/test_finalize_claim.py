"""finalize claims the order before it signs (ready → processing by a conditional update).

On PostgreSQL's READ COMMITTED two finalize requests can both read an order "ready"; the
one that loses must stop at the claim, before the CA signs anything, or a certificate is
issued and thrown away unrecorded. Here the race is set up deterministically: another
transaction has claimed the order after this request read it.
"""

from __future__ import annotations

from dataclasses import replace
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
from acmefleet.models import Account, Authorization, Order
from acmefleet.policy.orders import finalize_order
from acmefleet.store import orders as order_store
from acmefleet.store import orgs as org_store
from acmefleet.store.engine import Database
from acmefleet.store.ids import new_id
from acmefleet.store.schema import certificates
from tests.unit import rows

NAME = "www.claim.example.net"
ENDPOINT = EndpointConfig("private", "private", "private", ("private-server",), "private-server")


class CountingIssuer:
    """The real embedded CA, counting what it is asked to sign."""

    def __init__(self, inner: EmbeddedIssuer) -> None:
        self.inner = inner
        self.signed = 0

    def issue(self, request: IssueRequest) -> IssuedCertificate:
        self.signed += 1
        return self.inner.issue(request)


@pytest.fixture(scope="module")
def issuer_factory(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedIssuer:
    ca_dir: Path = tmp_path_factory.mktemp("ca")
    clock = FixedClock(rows.NOW - timedelta(hours=1))
    create_hierarchy(ca_dir, "private", clock=clock)
    return EmbeddedIssuer(
        load_authority(ca_dir, "private"),
        clock=FixedClock(rows.NOW),
        pki_base_url="http://pki.test",
    )


def _csr(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return b64url_encode(csr.public_bytes(serialization.Encoding.DER))


def _ready_order(database: Database) -> tuple[Account, Order]:
    with database.write() as conn:
        account = rows.account(conn)
        org = org_store.get_org(conn, account.org_id)
        assert org is not None
        org_store.add_domain(conn, org.id, "claim.example.net", "dns", rows.NOW)
        authz_id = new_id()
        authz = Authorization(
            authz_id,
            account.id,
            Identifier("dns", NAME),
            False,
            "valid",
            rows.NOW + timedelta(days=1),
            (),
        )
        order_store.insert_authorization(conn, authz, rows.NOW)
        order = rows.order(conn, account, authz)
    return account, order


def _finalize(database: Database, account: Account, order: Order, issuer: CountingIssuer) -> Order:
    with database.write() as conn:
        return finalize_order(
            conn,
            endpoint=ENDPOINT,
            account=account,
            account_spki=b"not the csr key",
            order=order,
            payload={"csr": _csr(NAME)},
            issuer=issuer,
            profiles=DEFAULT_PROFILES,
            now=rows.NOW,
        )


def _certificates(database: Database) -> int:
    with database.read() as conn:
        return int(conn.execute(select(func.count()).select_from(certificates)).scalar_one())


def test_a_ready_order_is_signed_once_and_ends_valid(
    database: Database, issuer_factory: EmbeddedIssuer
) -> None:
    account, order = _ready_order(database)
    issuer = CountingIssuer(issuer_factory)
    done = _finalize(database, account, order, issuer)
    assert done.finalization == "valid" and done.certificate_id is not None
    assert issuer.signed == 1 and _certificates(database) == 1
    with database.read() as conn:
        stored = order_store.get_order(conn, order.id)
    assert stored is not None and stored.finalization == "valid"


def test_the_loser_of_a_finalize_race_never_reaches_the_ca(
    database: Database, issuer_factory: EmbeddedIssuer
) -> None:
    account, order = _ready_order(database)
    with database.write() as conn:  # the winner's claim, committed after we read "ready"
        assert order_store.set_finalization(
            conn, order.id, expected="none", finalization="processing"
        )
    issuer = CountingIssuer(issuer_factory)
    with pytest.raises(AcmeError) as refused:
        _finalize(database, account, order, issuer)
    assert refused.value.type is ProblemType.ORDER_NOT_READY
    assert issuer.signed == 0 and _certificates(database) == 0


def test_a_failed_signing_leaves_the_order_ready_to_retry(
    database: Database, issuer_factory: EmbeddedIssuer
) -> None:
    account, order = _ready_order(database)
    too_long = replace(order, not_after=rows.NOW + timedelta(days=3650))
    issuer = CountingIssuer(issuer_factory)
    with pytest.raises(AcmeError, match="cannot issue"):
        _finalize(database, account, too_long, issuer)
    assert issuer.signed == 1  # it got as far as the CA, after the claim
    with database.read() as conn:
        stored = order_store.get_order(conn, order.id)
    assert stored is not None and stored.finalization == "none"  # the claim rolled back
    assert _certificates(database) == 0
