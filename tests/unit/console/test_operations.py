"""ConsoleOperations (the answers the REST API and the CLI's local mode both give) against a
real SQLite database, without a server."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from acmefleet.clock import FixedClock
from acmefleet.config import parse_config
from acmefleet.console.context import ConsoleContext
from acmefleet.console.errors import Conflict, ConsoleError, NotFound
from acmefleet.console.inventory import CertificateFilter
from acmefleet.console.operations import ConsoleOperations
from acmefleet.models import Account, Certificate
from acmefleet.store import accounts as account_store
from acmefleet.store import certificates as cert_store
from acmefleet.store.engine import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONFIG = {
    "server": {"base_url": "https://acme.test:8555", "pki_base_url": "http://acme.test:8556"},
    "endpoints": [
        {"name": "private", "type": "private", "ca": "private", "profiles": ["private-server"]},
    ],
}


@pytest.fixture
def ctx(database: Database) -> ConsoleContext:
    return ConsoleContext(
        config=parse_config(CONFIG),
        db=database,
        clock=FixedClock(NOW),
        validators={},
        profile_descriptions={"private-server": "TLS server, private CA"},
    )


@pytest.fixture
def ops(ctx: ConsoleContext) -> ConsoleOperations:
    return ConsoleOperations(ctx, "admin:alice", "192.0.2.7")


def _org(ops: ConsoleOperations, name: str = "Example") -> int:
    with ops.ctx.db.write() as conn:
        org_id: int = ops.create_org(conn, name)["id"]
    return org_id


def _certificate(database: Database, org_id: int) -> Certificate:
    account = Account(
        id="acct1",
        endpoint="private",
        org_id=org_id,
        jwk={"kty": "EC"},
        thumbprint="t" * 43,
        status="valid",
        contact=[],
        eab_kid="kid1",
        created_at=NOW,
    )
    cert = Certificate(
        id="cert1",
        serial_hex="01ab",
        account_id=account.id,
        order_id="order1",
        org_id=org_id,
        endpoint="private",
        ca_level="private",
        profile="private-server",
        names=["www.example.test"],
        not_before=NOW,
        not_after=NOW + timedelta(days=90),
        chain_pem="-----BEGIN CERTIFICATE-----\n",
        spki_sha256="0" * 64,
        revoked_at=None,
        revocation_reason=None,
    )
    with database.write() as conn:
        account_store.insert_account(conn, account)
        cert_store.insert_certificate(conn, cert, NOW)
    return cert


def test_organisation_lifecycle_is_audited_with_actor_and_source(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        disabled = ops.set_org_status(conn, org_id, "disabled")
        events = ops.audit(conn, 10)
    assert disabled == {
        "id": org_id,
        "name": "Example",
        "status": "disabled",
        "created": "2026-12-01T12:00:00Z",
    }
    assert [e["action"] for e in events][:2] == ["org.disable", "org.create"]
    assert {(e["actor"], e["source"]) for e in events} == {("admin:alice", "192.0.2.7")}


def test_unknown_organisation_is_not_found(ops: ConsoleOperations) -> None:
    with ops.ctx.db.read() as conn, pytest.raises(NotFound):
        ops.list_domains(conn, 12345)


def test_domain_added_validated_removed(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        added = ops.add_domain(
            conn, org_id, "Example.TEST", validated=True, justification="owned", days=30
        )
        assert added["name"] == "example.test"
        assert added["validated"] is True
        assert added["validated_until"] == "2026-12-31T12:00:00Z"
        assert added["validated_by"] == "admin:alice"
        unvalidated = ops.unvalidate(conn, added["id"])
        assert unvalidated["validated"] is False
        removed = ops.remove_domain(conn, added["id"])
        assert removed["id"] == added["id"]
        assert ops.list_domains(conn, org_id) == []


def test_a_domain_not_validated_gets_no_validation_fields(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        added = ops.add_domain(conn, org_id, "plain.example.test")
    assert added["validated"] is False
    assert added["validated_at"] is None
    assert added["validation_scope"] is None


def test_manual_validations_record_their_scope_exact_by_default(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        added = ops.add_domain(conn, org_id, "a.example.test", validated=True, justification="x")
        wide = ops.add_domain(
            conn, org_id, "b.example.test", validated=True, justification="x", scope="subdomains"
        )
        narrowed = ops.validate_manually(conn, wide["id"], justification="only b", days=10)
        widened = ops.validate_manually(
            conn, added["id"], justification="the whole zone", days=10, scope="subdomains"
        )
        with pytest.raises(ConsoleError, match="scope"):
            ops.validate_manually(conn, added["id"], justification="bad", days=10, scope="all")
        with pytest.raises(ConsoleError, match="scope"):
            ops.add_domain(conn, org_id, "c.example.test", validated=True, scope="*")
        events = ops.audit(conn, 4)
        listed = ops.list_domains(conn, org_id)
    assert added["validation_scope"] == "exact"
    assert wide["validation_scope"] == "subdomains"
    assert narrowed["validation_scope"] == "exact"
    assert widened["validation_scope"] == "subdomains"
    assert [d["name"] for d in listed] == ["a.example.test", "b.example.test"]
    assert [(e["action"], e["details"]["scope"]) for e in events[:2]] == [
        ("domain.validate", "subdomains"),
        ("domain.validate", "exact"),
    ]


def test_minted_credential_shows_its_hmac_once(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        minted = ops.mint_eab(conn, org_id, "private", days=2)
        listed = ops.list_eab(conn)
        shown = ops.get_eab(conn, minted["kid"])
    assert minted["directory"] == "https://acme.test:8555/acme/private/directory"
    assert minted["expires"] == "2026-12-03T12:00:00Z"
    assert len(minted["hmac_key"]) >= 43 and not minted["hmac_key"].startswith("-")
    assert "hmac_key" not in shown and all("hmac_key" not in c for c in listed)
    assert shown["status"] == "unused"
    assert shown["org"] == "Example"


def test_revoking_a_credential_twice_is_a_conflict(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        kid = ops.mint_eab(conn, org_id, "private", days=None)["kid"]
        assert ops.revoke_eab(conn, kid)["status"] == "revoked"
        with pytest.raises(Conflict):
            ops.revoke_eab(conn, kid)


def test_unknown_endpoint_cannot_be_minted_for(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn, pytest.raises(NotFound, match="no endpoint"):
        ops.mint_eab(conn, org_id, "nowhere", days=None)


def test_endpoints_list_profiles_with_descriptions(ops: ConsoleOperations) -> None:
    assert ops.list_endpoints() == [
        {
            "name": "private",
            "type": "private",
            "ca": "private",
            "profiles": {"private-server": "TLS server, private CA"},
            "default_profile": "private-server",
            "directory": "https://acme.test:8555/acme/private/directory",
        }
    ]


def test_certificates_filtered_and_revoked(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    cert = _certificate(ops.ctx.db, org_id)
    with ops.ctx.db.write() as conn:
        found = ops.list_certificates(conn, CertificateFilter(org_id, None, "www", None, None))
        assert [c["id"] for c in found] == [cert.id]
        assert found[0]["days_left"] == 90
        assert ops.list_certificates(conn, CertificateFilter(None, None, None, None, True)) == []
        with pytest.raises(ConsoleError, match="reason"):
            ops.revoke_certificate(conn, cert.id, reason=2)  # cACompromise: not a subscriber's
        revoked = ops.revoke_certificate(conn, cert.id, reason=1)
    assert revoked["revoked"] == "2026-12-01T12:00:00Z"
    assert revoked["revocation_reason"] == 1


def test_a_revocation_changes_the_crl_mark_once_committed(ops: ConsoleOperations) -> None:
    """The published CRL is rebuilt when the mark changes (``policy.crl_publication``): a committed
    revocation changes it, one rolled back does not."""
    org_id = _org(ops)
    cert = _certificate(ops.ctx.db, org_id)
    with ops.ctx.db.read() as conn:
        before = cert_store.revocation_mark(conn, "private")
    with pytest.raises(RuntimeError), ops.ctx.db.write() as conn:
        ops.revoke_certificate(conn, cert.id, reason=4)
        raise RuntimeError("the command failed after the revocation")
    with ops.ctx.db.read() as conn:
        assert cert_store.revocation_mark(conn, "private") == before == (0, None)
        assert ops.get_certificate(conn, cert.id)["revoked"] is None
    with ops.ctx.db.write() as conn:
        ops.revoke_certificate(conn, cert.id, reason=4)
    with ops.ctx.db.read() as conn:
        assert cert_store.revocation_mark(conn, "private") == (1, NOW)
        assert cert_store.revocation_mark(conn, "public") == (0, None)


def test_account_deactivated_once(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    _certificate(ops.ctx.db, org_id)
    with ops.ctx.db.write() as conn:
        assert ops.deactivate_account(conn, "acct1")["status"] == "deactivated"
        with pytest.raises(Conflict):
            ops.deactivate_account(conn, "acct1")


def test_domain_check_without_http01_validator_is_refused(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        domain_id = ops.add_domain(conn, org_id, "www.example.test")["id"]
    pending = ops.start_http01(domain_id)
    assert (
        pending["url"] == f"http://www.example.test/.well-known/acme-challenge/{pending['token']}"
    )
    assert pending["expected_content"] == f"{pending['token']}.acmefleet-domain-validation"
    with pytest.raises(ConsoleError, match="not configured"):
        asyncio.run(ops.check_domain(domain_id))


def test_a_dns_check_hands_out_a_random_value_record_and_expiry(ops: ConsoleOperations) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        domain_id = ops.add_domain(conn, org_id, "zone.example.test")["id"]
        network_id = ops.add_domain(conn, org_id, "192.0.2.0/24")["id"]
    pending = ops.start_dns(domain_id)
    value = pending["random_value"]
    assert len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == 32
    assert pending == {
        "domain": "zone.example.test",
        "method": "dns",
        "scope": "subdomains",
        "expires": "2026-12-31T12:00:00Z",  # 30 days
        "record_name": "_acmefleet-challenge.zone.example.test",
        "record_type": "TXT",
        "random_value": value,
    }
    assert ops.start_dns(domain_id)["random_value"] != value, "a new value at each start"
    with ops.ctx.db.read() as conn:
        shown = ops.get_domain(conn, domain_id)
    assert (shown["check_method"], shown["check_expires"]) == ("dns", "2026-12-31T12:00:00Z")
    assert shown["validated"] is False
    # No dns-01 validator in this context: refused, not guessed.
    with pytest.raises(ConsoleError, match="dns validation is not configured"):
        asyncio.run(ops.check_domain(domain_id))
    with pytest.raises(ConsoleError, match="IP networks are not validated by dns"):
        ops.start_dns(network_id)


def test_an_expired_random_value_cannot_complete_a_check(
    ctx: ConsoleContext, ops: ConsoleOperations
) -> None:
    org_id = _org(ops)
    with ops.ctx.db.write() as conn:
        domain_id = ops.add_domain(conn, org_id, "late.example.test")["id"]
    ops.start_dns(domain_id)
    later = ConsoleOperations(replace(ctx, clock=FixedClock(NOW + timedelta(days=30))), "a")
    with pytest.raises(ConsoleError, match=r"Random Value .* expired on 2026-12-31 12:00 UTC"):
        asyncio.run(later.check_domain(domain_id))
    with ops.ctx.db.read() as conn:
        assert ops.get_domain(conn, domain_id)["check_method"] == "dns"
