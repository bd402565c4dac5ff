"""The certificate inventory queries of acmefleet.store.certificates on SQLite."""

from __future__ import annotations

from acmefleet.store import certificates
from acmefleet.store.engine import Database
from tests.unit.store.builders import at, certificate_model


def add(db: Database, cert_id: str, account_id: str, org_id: int, created: int, **kw: str) -> None:
    serial = f"5e{cert_id.encode().hex()}"
    with db.write() as conn:
        certificates.insert_certificate(
            conn, certificate_model(cert_id, account_id, org_id, serial, **kw), at(created)
        )


def test_lookups_by_id_and_serial(db: Database, org_id: int, account_id: str) -> None:
    add(db, "c1", account_id, org_id, 1)
    add(db, "c2", account_id, org_id, 2)
    with db.read() as conn:
        by_id = certificates.get_certificate(conn, "c2")
        by_serial = certificates.find_by_serial(conn, "5e6331")
        assert certificates.get_certificate(conn, "c3") is None
        assert certificates.find_by_serial(conn, "5e6333") is None
    assert by_id is not None and by_id.serial_hex == "5e6332"
    assert by_serial is not None and by_serial.id == "c1"


def test_the_inventory_lists_in_issuance_order(db: Database, org_id: int, account_id: str) -> None:
    for cert_id, created in (("late", 9), ("early", 1), ("middle", 5)):
        add(db, cert_id, account_id, org_id, created)
    with db.read() as conn:
        assert [c.id for c in certificates.list_certificates(conn)] == ["early", "middle", "late"]


def test_revocation_once_and_the_revoked_list_of_one_ca(
    db: Database, org_id: int, account_id: str
) -> None:
    add(db, "private-1", account_id, org_id, 1)
    add(db, "private-2", account_id, org_id, 2)
    add(db, "public-1", account_id, org_id, 3, ca_level="public")
    with db.read() as conn:
        assert certificates.revoked_entries(conn, "private") == []
    with db.write() as conn:
        assert certificates.mark_revoked(conn, "private-2", at(10), 1)
        assert certificates.mark_revoked(conn, "public-1", at(11), 4)
        # Revoked already: the first time and reason stay.
        assert not certificates.mark_revoked(conn, "private-2", at(12), 5)
        assert not certificates.mark_revoked(conn, "unknown", at(12), 5)
    with db.read() as conn:
        revoked = certificates.revoked_entries(conn, "private")
        public = certificates.revoked_entries(conn, "public")
    assert revoked == [(f"5e{b'private-2'.hex()}", at(10), 1)]
    assert public == [(f"5e{b'public-1'.hex()}", at(11), 4)]
