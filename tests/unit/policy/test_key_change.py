"""keyChange's stored-state steps (RFC 8555 §7.3.5) in policy, on a real database."""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey

from acmefleet.errors import AcmeError, KeyInUse, ProblemType
from acmefleet.jose.keys import AccountKey, import_account_key
from acmefleet.policy.accounts import change_key
from acmefleet.store import accounts as account_store
from acmefleet.store.engine import Database
from tests.unit import rows


def fresh_key() -> AccountKey:
    return import_account_key(ECKey.generate_key("P-256").as_dict(private=False))


def test_key_in_use_carries_the_holder_id_and_the_conflict_problem() -> None:
    error = KeyInUse("holder-1")
    assert isinstance(error, AcmeError)
    assert error.holder_id == "holder-1"
    assert error.type is ProblemType.MALFORMED and error.http_status == 409
    assert error.headers == {}  # no URL: the edge adds Location
    assert error.as_problem()["status"] == 409


def test_a_key_held_by_another_account_raises_key_in_use(database: Database) -> None:
    taken = fresh_key()
    with database.write() as conn:
        account = rows.account(conn)
        holder = rows.account(conn, jwk=taken.jwk)
        with pytest.raises(KeyInUse) as caught:
            change_key(conn, account, taken, account.jwk)
        assert caught.value.holder_id == holder.id
        stored = account_store.get_account(conn, account.id)
    assert stored is not None and stored.thumbprint == account.thumbprint


def test_old_key_must_be_the_current_key(database: Database) -> None:
    with database.write() as conn:
        account = rows.account(conn)
        for old_key in (None, "key", fresh_key().jwk):
            with pytest.raises(AcmeError) as caught:
                change_key(conn, account, fresh_key(), old_key)
            assert caught.value.type is ProblemType.UNAUTHORIZED


def test_the_new_key_replaces_the_old(database: Database) -> None:
    new_key = fresh_key()
    with database.write() as conn:
        account = rows.account(conn)
        updated = change_key(conn, account, new_key, account.jwk)
    assert updated.thumbprint == new_key.thumbprint and updated.jwk == new_key.jwk
    with database.read() as conn:
        assert account_store.find_by_thumbprint(conn, "private", new_key.thumbprint) == updated
