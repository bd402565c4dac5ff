"""Every store row mapper puts every column into the model field of the same meaning.

Each test writes through the store's own functions (inserts, then the updates that fill
the columns an insert leaves empty), reads back through its getters, and compares every
field: with the expected value (distinct per field, see builders.py) and with the raw
column it comes from.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, select

from acmefleet.identifiers import Identifier
from acmefleet.store import accounts, certificates, delegations, eab, orders, orgs, schema, tokens
from acmefleet.store.engine import Database
from tests.unit.store.builders import (
    account_model,
    assert_columns,
    assert_fields,
    at,
    authorization_model,
    certificate_model,
    order_model,
)


def raw(conn: Connection, table: Table, **key: Any) -> dict[str, Any]:
    query = select(table).where(*(table.c[name] == value for name, value in key.items()))
    return dict(conn.execute(query).one()._mapping)


def test_organization(db: Database) -> None:
    with db.write() as conn:
        orgs.create_org(conn, "first", at(1))
        created = orgs.create_org(conn, "acme", at(2))
        orgs.set_org_status(conn, created.id, "disabled")
    assert_fields(created, {"id": 2, "name": "acme", "status": "active", "created_at": at(2)})
    with db.read() as conn:
        got = orgs.get_org(conn, 2)
        row = raw(conn, schema.organizations, id=2)
    assert_fields(got, {"id": 2, "name": "acme", "status": "disabled", "created_at": at(2)})
    assert_columns(got, row)


def test_org_domain(db: Database, org_id: int) -> None:
    with db.write() as conn:
        added = orgs.add_domain(conn, org_id, "10.0.0.0/8", "ip", at(3))
        orgs.mark_validated(
            conn, added.id, at=at(4), until=at(5), method="http-01", scope="exact", by="alice"
        )
        orgs.set_challenge(conn, added.id, "chal-token", at(6), "dns")
    unvalidated = {
        "id": added.id,
        "org_id": org_id,
        "name": "10.0.0.0/8",
        "kind": "ip",
        "validated_at": None,
        "validated_until": None,
        "validation_method": None,
        "validated_by": None,
        "challenge_token": None,
        "challenge_started_at": None,
        "validation_scope": None,
        "challenge_method": None,
    }
    assert added.id != org_id
    assert_fields(added, unvalidated)
    with db.read() as conn:
        got = orgs.get_domain(conn, added.id)
        row = raw(conn, schema.org_domains, id=added.id)
    assert_fields(
        got,
        {
            **unvalidated,
            "validated_at": at(4),
            "validated_until": at(5),
            "validation_method": "http-01",
            "validated_by": "alice",
            "challenge_token": "chal-token",
            "challenge_started_at": at(6),
            "validation_scope": "exact",
            "challenge_method": "dns",
        },
    )
    assert_columns(got, row)


def test_eab_credential_unused_bound_and_revoked(db: Database, org_id: int) -> None:
    with db.write() as conn:
        for kid in ("kid-unused", "kid-bound", "kid-revoked"):
            eab.insert_credential(
                conn,
                kid=kid,
                org_id=org_id,
                endpoint="internal",
                hmac_key=f"hmac-{kid}",
                created_at=at(1),
                expires_at=at(100),
                created_by="cli",
            )
        assert eab.consume(conn, "kid-bound", "hmac-kid-bound", "acct-9", at(40))
        assert eab.revoke(conn, "kid-revoked", at(50))
    common = {"org_id": org_id, "endpoint": "internal", "created_at": at(1), "expires_at": at(100)}
    expected = {
        "kid-unused": {"hmac_key": "hmac-kid-unused", "bound_at": None, "account_id": None},
        "kid-bound": {"hmac_key": None, "bound_at": at(40), "account_id": "acct-9"},
        "kid-revoked": {"hmac_key": None, "bound_at": None, "account_id": None},
    }
    with db.read() as conn:
        for kid, values in expected.items():
            got = eab.get_credential(conn, kid)
            revoked_at = at(50) if kid == "kid-revoked" else None
            assert_fields(got, {"kid": kid, **common, **values, "revoked_at": revoked_at})
            assert_columns(got, raw(conn, schema.eab_credentials, kid=kid))


def test_account(db: Database, org_id: int) -> None:
    account = account_model(org_id, 7)
    with db.write() as conn:
        accounts.insert_account(conn, account)
        accounts.update_account(conn, "acct-7", status="deactivated")
    with db.read() as conn:
        got = accounts.get_account(conn, "acct-7")
        row = raw(conn, schema.accounts, id="acct-7")
    assert_fields(
        got,
        {
            "id": "acct-7",
            "endpoint": "private",
            "org_id": org_id,
            "jwk": {"kty": "EC", "crv": "P-256", "x": "x7", "y": "y7"},
            "thumbprint": "thumb-7",
            "status": "deactivated",
            "contact": ["mailto:ops7@example.com"],
            "eab_kid": "kid-of-acct-7",
            "created_at": at(17),
        },
    )
    assert_columns(got, row)


def test_certificate(db: Database, org_id: int, account_id: str) -> None:
    with db.write() as conn:
        certificates.insert_certificate(
            conn, certificate_model("cert-1", account_id, org_id, "0abc"), at(21)
        )
        assert certificates.mark_revoked(conn, "cert-1", at(30), 4)
    with db.read() as conn:
        got = certificates.get_certificate(conn, "cert-1")
        row = raw(conn, schema.certificates, id="cert-1")
    assert_fields(
        got,
        {
            "id": "cert-1",
            "serial_hex": "0abc",
            "account_id": account_id,
            "order_id": "order-of-cert-1",
            "org_id": org_id,
            "endpoint": "internal",
            "ca_level": "private",
            "profile": "private-server",
            "names": ["www.example.com", "example.com"],
            "not_before": at(20),
            "not_after": at(9000),
            "chain_pem": "-----BEGIN CERTIFICATE-----\ncert-1\n-----END CERTIFICATE-----\n",
            "spki_sha256": "spki-cert-1",
            "revoked_at": at(30),
            "revocation_reason": 4,
        },
    )
    assert_columns(got, row)


def test_challenge_and_authorization(db: Database, account_id: str) -> None:
    authz = authorization_model(
        "authz-1", account_id, "example.org", wildcard=True, stored_status="valid"
    )
    with db.write() as conn:
        orders.insert_authorization(conn, authz, at(2))
        assert orders.set_challenge_state(
            conn,
            "authz-1-http",
            expected="pending",
            status="invalid",
            validated_at=at(3),
            error={"type": "urn:ietf:params:acme:error:connection"},
        )
        orders.set_caa_checked(conn, "authz-1", at(4))
    with db.read() as conn:
        challenge = orders.get_challenge(conn, "authz-1-http")
        got = orders.get_authorization(conn, "authz-1")
        challenge_row = raw(conn, schema.challenges, id="authz-1-http")
        authz_row = raw(conn, schema.authorizations, id="authz-1")
    assert_fields(
        challenge,
        {
            "id": "authz-1-http",
            "authz_id": "authz-1",
            "type": "http-01",
            "token": "token-authz-1",
            "status": "invalid",
            "validated_at": at(3),
            "error": {"type": "urn:ietf:params:acme:error:connection"},
            "processing_since": None,
        },
    )
    assert_columns(challenge, challenge_row)
    assert_fields(
        got,
        {
            "id": "authz-1",
            "account_id": account_id,
            "identifier": Identifier(type="dns", value="example.org"),
            "wildcard": True,
            "stored_status": "valid",
            "expires_at": at(500),
            "challenges": (challenge,),
            "caa_checked_at": at(4),
        },
    )
    assert_columns(
        got,
        authz_row,
        renamed={"stored_status": "status"},
        not_columns=("identifier", "challenges"),
    )
    assert (authz_row["identifier_type"], authz_row["identifier_value"]) == ("dns", "example.org")


def test_order(db: Database, account_id: str) -> None:
    first = authorization_model("authz-1", account_id, "a.example.com")
    second = authorization_model(
        "authz-2", account_id, identifier=Identifier(type="ip", value="10.1.2.3")
    )
    order = order_model(
        "order-1",
        account_id,
        (second, first),
        not_before=at(7),
        not_after=at(8),
        replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
        replaces_certificate="cert-7",
    )
    with db.write() as conn:
        orders.insert_authorization(conn, first, at(1))
        orders.insert_authorization(conn, second, at(1))
        orders.insert_order(conn, order, at(2))
        assert orders.set_finalization(
            conn,
            "order-1",
            expected="none",
            finalization="invalid",
            certificate_id="cert-9",
            error={"type": "urn:ietf:params:acme:error:badCSR"},
        )
    with db.read() as conn:
        got = orders.get_order(conn, "order-1")
        row = raw(conn, schema.orders, id="order-1")
        authzs = (
            orders.get_authorization(conn, "authz-2"),
            orders.get_authorization(conn, "authz-1"),
        )
    assert_fields(
        got,
        {
            "id": "order-1",
            "account_id": account_id,
            "profile": "private-server",
            "identifiers": (
                Identifier(type="ip", value="10.1.2.3"),
                Identifier(type="dns", value="a.example.com"),
            ),
            "expires_at": at(600),
            "not_before": at(7),
            "not_after": at(8),
            "finalization": "invalid",
            "error": {"type": "urn:ietf:params:acme:error:badCSR"},
            "certificate_id": "cert-9",
            "authorizations": authzs,
            "replaces": "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
            "replaces_certificate": "cert-7",
        },
    )
    assert got is not None and authzs == (second, first)  # in the order's own order
    assert_columns(got, row, not_columns=("identifiers", "authorizations"))
    assert row["identifiers"] == [
        {"type": "ip", "value": "10.1.2.3"},
        {"type": "dns", "value": "a.example.com"},
    ]


def test_delegation(db: Database, org_id: int) -> None:
    with db.write() as conn:
        orgs.add_domain(conn, org_id, "example.net", "dns", at(1))
        domain = orgs.add_domain(conn, org_id, "example.com", "dns", at(1))
        added = delegations.add(conn, domain.id, account_id="acct-3", eab_kid="kid-3", now=at(2))
    expected = {
        "id": 1,
        "domain_id": domain.id,
        "account_id": "acct-3",
        "eab_kid": "kid-3",
        "created_at": at(2),
    }
    assert_fields(added, expected)
    with db.read() as conn:
        got = delegations.get(conn, 1)
        assert_columns(got, raw(conn, schema.domain_delegations, id=1))
    assert_fields(got, expected)


def test_token_and_session(db: Database) -> None:
    record = tokens.TokenRecord(
        id="tok-1",
        name="ci",
        role="admin",
        secret_sha256="sha-of-secret",
        created_at=at(1),
        created_by="alice",
        revoked_at=None,
    )
    with db.write() as conn:
        tokens.insert_token(conn, record)
        tokens.insert_session(
            conn,
            id_sha256="sid-sha",
            token_id="tok-1",
            csrf_token="csrf",
            now=at(2),
            expires_at=at(3),
        )
    with db.read() as conn:
        session = tokens.get_session(conn, "sid-sha")
        assert_columns(session, raw(conn, schema.console_sessions, id_sha256="sid-sha"))
    assert_fields(session, {"token_id": "tok-1", "csrf_token": "csrf", "expires_at": at(3)})
    with db.write() as conn:
        assert tokens.revoke_token(conn, "tok-1", at(4))
    with db.read() as conn:
        got = tokens.get_token(conn, "tok-1")
        assert_columns(got, raw(conn, schema.admin_tokens, id="tok-1"))
    assert_fields(
        got,
        {
            "id": "tok-1",
            "name": "ci",
            "role": "admin",
            "secret_sha256": "sha-of-secret",
            "created_at": at(1),
            "created_by": "alice",
            "revoked_at": at(4),
        },
    )
