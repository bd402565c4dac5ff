"""EAB credential queries and their one-way state changes (acmefleet.store.eab) on SQLite."""

from __future__ import annotations

from acmefleet.models import EabCredential
from acmefleet.store import eab
from acmefleet.store.engine import Database
from tests.unit.store.builders import at


def mint(db: Database, org_id: int, kid: str, created: int) -> None:
    with db.write() as conn:
        eab.insert_credential(
            conn,
            kid=kid,
            org_id=org_id,
            endpoint="private",
            hmac_key=f"hmac-{kid}",
            created_at=at(created),
            expires_at=at(1000),
            created_by="cli",
        )


def get(db: Database, kid: str) -> EabCredential:
    with db.read() as conn:
        credential = eab.get_credential(conn, kid)
    assert credential is not None
    return credential


def test_get_and_list_in_minting_order(db: Database, org_id: int) -> None:
    for kid, created in (("k-late", 9), ("k-early", 1), ("k-middle", 5)):
        mint(db, org_id, kid, created)
    with db.read() as conn:
        assert [c.kid for c in eab.list_credentials(conn)] == ["k-early", "k-middle", "k-late"]
        assert eab.get_credential(conn, "k-none") is None
    assert get(db, "k-middle").state(at(6)) == "unused"


def test_a_credential_binds_once_with_its_own_key(db: Database, org_id: int) -> None:
    mint(db, org_id, "k1", 1)
    with db.write() as conn:
        assert not eab.consume(conn, "k1", "hmac-wrong", "acct-1", at(2))
        assert eab.consume(conn, "k1", "hmac-k1", "acct-1", at(3))
        assert not eab.consume(conn, "k1", "hmac-k1", "acct-2", at(4))
        assert not eab.revoke(conn, "k1", at(5))  # bound: no longer revocable
    bound = get(db, "k1")
    assert (bound.hmac_key, bound.bound_at, bound.account_id, bound.revoked_at) == (
        None,
        at(3),
        "acct-1",
        None,
    )


def test_revoking_erases_the_key_and_forbids_binding(db: Database, org_id: int) -> None:
    mint(db, org_id, "k1", 1)
    with db.write() as conn:
        assert eab.revoke(conn, "k1", at(2))
        assert not eab.revoke(conn, "k1", at(3))
        assert not eab.revoke(conn, "k-none", at(3))
        assert not eab.consume(conn, "k1", "hmac-k1", "acct-1", at(4))
    revoked = get(db, "k1")
    assert (revoked.hmac_key, revoked.revoked_at, revoked.bound_at) == (None, at(2), None)
    assert revoked.state(at(5)) == "revoked"
