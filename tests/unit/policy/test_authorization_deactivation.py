"""RFC 8555 §7.5.2 deactivation, decided in policy and written to a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.models import AuthzStatus
from acmefleet.policy.authorizations import deactivate
from acmefleet.store import orders as order_store
from acmefleet.store.engine import Database
from tests.unit import rows
from tests.unit.rows import NOW

DEACTIVATE = {"status": "deactivated"}


@pytest.mark.parametrize("status", ["pending", "valid"])
def test_pending_and_valid_authorizations_are_deactivated(
    database: Database, status: AuthzStatus
) -> None:
    with database.write() as conn:
        authz = rows.authorization(conn, rows.account(conn), status)
        returned = deactivate(conn, authz, DEACTIVATE, NOW)
    assert returned.stored_status == "deactivated"
    with database.read() as conn:
        stored = order_store.get_authorization(conn, authz.id)
    assert stored == returned


@pytest.mark.parametrize("status", ["invalid", "deactivated", "revoked"])
def test_other_states_are_returned_unchanged(database: Database, status: AuthzStatus) -> None:
    with database.write() as conn:
        authz = rows.authorization(conn, rows.account(conn), status)
        assert deactivate(conn, authz, DEACTIVATE, NOW) == authz
    with database.read() as conn:
        stored = order_store.get_authorization(conn, authz.id)
    assert stored is not None and stored.stored_status == status


def test_an_expired_authorization_is_not_written(database: Database) -> None:
    with database.write() as conn:
        authz = rows.authorization(
            conn, rows.account(conn), "valid", expires_at=NOW - timedelta(seconds=1)
        )
        assert deactivate(conn, authz, DEACTIVATE, NOW).status(NOW) == "expired"
    with database.read() as conn:
        stored = order_store.get_authorization(conn, authz.id)
    assert stored is not None and stored.stored_status == "valid"


@pytest.mark.parametrize("payload", [{}, {"status": "valid"}, {"status": ["deactivated"]}])
def test_any_other_payload_is_malformed_and_writes_nothing(
    database: Database, payload: dict[str, object]
) -> None:
    with database.write() as conn:
        authz = rows.authorization(conn, rows.account(conn))
        with pytest.raises(AcmeError) as caught:
            deactivate(conn, authz, payload, NOW)
    assert caught.value.type is ProblemType.MALFORMED
    assert caught.value.http_status == 400
    with database.read() as conn:
        stored = order_store.get_authorization(conn, authz.id)
    assert stored is not None and stored.stored_status == "pending"
