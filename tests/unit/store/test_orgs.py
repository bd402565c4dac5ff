"""Organisation and domain queries of acmefleet.store.orgs on SQLite."""

from __future__ import annotations

import pytest

from acmefleet.store import orgs
from acmefleet.store.engine import Database
from tests.unit.store.builders import at


def test_organisations_by_id_and_name_listed_by_name(db: Database) -> None:
    with db.write() as conn:
        zeta = orgs.create_org(conn, "zeta", at(1))
        alpha = orgs.create_org(conn, "alpha", at(2))
        with pytest.raises(orgs.AlreadyExists, match="'zeta' already exists"):
            orgs.create_org(conn, "zeta", at(3))
        # The failed insert was rolled back alone: the transaction goes on.
        orgs.set_org_status(conn, zeta.id, "disabled")
    with db.read() as conn:
        assert [o.name for o in orgs.list_orgs(conn)] == ["alpha", "zeta"]
        assert orgs.get_org(conn, alpha.id) == alpha
        found = orgs.find_org(conn, "zeta")
        assert orgs.get_org(conn, 99) is None
        assert orgs.find_org(conn, "omega") is None
    assert found is not None and (found.id, found.status) == (zeta.id, "disabled")


def test_domains_belong_to_one_organisation(db: Database) -> None:
    with db.write() as conn:
        acme = orgs.create_org(conn, "acme", at(1)).id
        other = orgs.create_org(conn, "other", at(1)).id
        www = orgs.add_domain(conn, acme, "www.example.com", "dns", at(2))
        net = orgs.add_domain(conn, acme, "10.0.0.0/8", "ip", at(2))
        shared = orgs.add_domain(conn, other, "www.example.com", "dns", at(2))
        orgs.add_domain(conn, other, "a.example.org", "dns", at(2))
        with pytest.raises(orgs.AlreadyExists, match="already in this organisation"):
            orgs.add_domain(conn, acme, "www.example.com", "dns", at(3))
    with db.read() as conn:
        assert [d.name for d in orgs.list_domains(conn, acme)] == ["10.0.0.0/8", "www.example.com"]
        everywhere = [(d.name, d.org_id) for d in orgs.list_all_domains(conn)]
        assert [name for name, _ in everywhere] == sorted(name for name, _ in everywhere)
        assert sorted(everywhere) == sorted(
            [
                ("10.0.0.0/8", acme),
                ("a.example.org", other),
                ("www.example.com", acme),
                ("www.example.com", other),
            ]
        )
        assert orgs.find_domain(conn, acme, "www.example.com") == www
        assert orgs.find_domain(conn, other, "www.example.com") == shared
        assert orgs.find_domain(conn, other, "10.0.0.0/8") is None
        assert orgs.get_domain(conn, net.id) == net
    with db.write() as conn:
        orgs.remove_domain(conn, net.id)
    with db.read() as conn:
        assert orgs.get_domain(conn, net.id) is None
        assert [d.name for d in orgs.list_domains(conn, acme)] == ["www.example.com"]


def test_clearing_a_validation_keeps_a_challenge_in_progress(db: Database, org_id: int) -> None:
    with db.write() as conn:
        domain = orgs.add_domain(conn, org_id, "example.com", "dns", at(1))
        orgs.mark_validated(
            conn, domain.id, at=at(2), until=at(3), method="http-01", scope="exact", by="bob"
        )
        orgs.set_challenge(conn, domain.id, "token-1", at(4))
    with db.read() as conn:
        validated = orgs.get_domain(conn, domain.id)
    assert validated is not None and validated.is_validated(at(2))
    assert not validated.is_validated(at(3))
    with db.write() as conn:
        orgs.clear_validation(conn, domain.id)
    with db.read() as conn:
        cleared = orgs.get_domain(conn, domain.id)
    assert cleared is not None
    assert (cleared.validated_at, cleared.validated_until) == (None, None)
    assert (cleared.validation_method, cleared.validated_by) == (None, None)
    assert (cleared.challenge_token, cleared.challenge_started_at) == ("token-1", at(4))
    with db.write() as conn:
        orgs.set_challenge(conn, domain.id, None, None)
    with db.read() as conn:
        assert orgs.get_domain(conn, domain.id) == domain
