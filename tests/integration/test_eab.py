"""External Account Binding against a running server: the negative matrix and the race."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest

from tests.support.acme_client import AccountKey, AcmeClient, is_problem, problem_type
from tests.support.acmefleet_server import AcmefleetServer

pytestmark = pytest.mark.integration
ERR = "urn:ietf:params:acme:error:"


def client(server: AcmefleetServer, endpoint: str = "private") -> AcmeClient:
    return AcmeClient(server.directory(endpoint), server.ca_bundle)


def expect(response: httpx.Response, kind: str, status: int | None = None) -> None:
    assert problem_type(response) == ERR + kind, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    assert response.headers.get("Replay-Nonce"), "errors carry a fresh nonce too"


def test_new_account_binds_eab_once_and_erases_hmac(acmefleet: AcmefleetServer) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    with client(acmefleet) as first:
        created = first.new_account((kid, hmac_key), contact=["mailto:ops@example.com"])
        assert created.status_code == 201, created.text
        assert created.headers["Location"].startswith(acmefleet.base_url + "/acme/private/acct/")
        assert created.json()["status"] == "valid"
        assert 'rel="index"' in created.headers["Link"]
        # The same key again: 200 and the same Location, before any EAB check (§7.3.1).
        again = first.new_account(None)
        assert again.status_code == 200
        assert again.headers["Location"] == created.headers["Location"]
        existing = first.new_account(None, only_return_existing=True)
        assert existing.status_code == 200
    with acmefleet.db() as database, database.read() as conn:
        row = conn.exec_driver_sql(
            "SELECT hmac_key, bound_at, account_id FROM eab_credentials WHERE kid = ?", (kid,)
        ).one()
    assert row.hmac_key is None and row.bound_at is not None and row.account_id


def test_reuse_of_a_bound_eab_by_another_key(acmefleet: AcmefleetServer) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    with client(acmefleet) as first, client(acmefleet) as second:
        assert first.new_account((kid, hmac_key)).status_code == 201
        before = acmefleet.count("accounts")
        expect(second.new_account((kid, hmac_key)), "unauthorized", 403)
        assert acmefleet.count("accounts") == before


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("wrong-hmac", "unauthorized"),
        ("unknown-kid", "unauthorized"),
        ("other-endpoint", "unauthorized"),
        ("expired", "unauthorized"),
        ("url-mismatch", "unauthorized"),
        ("nonce-present", "malformed"),
        ("payload-other-key", "unauthorized"),
        ("missing", "externalAccountRequired"),
        ("hmac-as-outer-alg", "badSignatureAlgorithm"),
        ("inner-alg-es256", "badSignatureAlgorithm"),
        ("only-return-existing", "accountDoesNotExist"),
    ],
)
def test_eab_negative_matrix(acmefleet: AcmefleetServer, case: str, kind: str) -> None:
    endpoint = "public" if case == "other-endpoint" else "private"
    kid, hmac_key = acmefleet.mint_eab(
        "acme", endpoint, **({"lifetime": timedelta(microseconds=1)} if case == "expired" else {})
    )
    before = acmefleet.snapshot()
    with client(acmefleet) as acme:
        new_account_url = acme.url_for("newAccount")
        eab: tuple[str, str] | dict[str, str] | None = (kid, hmac_key)
        knobs: dict[str, object] = {}
        if case == "wrong-hmac":
            eab = (kid, "A" * 43)
        elif case == "unknown-kid":
            eab = ("no-such-kid", hmac_key)
        elif case == "url-mismatch":
            eab = acme.eab_jws(
                kid, hmac_key, url=new_account_url.replace("new-account", "new-order")
            )
        elif case == "nonce-present":
            eab = acme.eab_jws(kid, hmac_key, nonce=acme.new_nonce())
        elif case == "payload-other-key":
            eab = acme.eab_jws(kid, hmac_key, payload=AccountKey.generate().jwk)
        elif case == "missing":
            eab = None
        elif case == "hmac-as-outer-alg":
            knobs = {"protected_overrides": {"alg": "HS256"}}
        elif case == "inner-alg-es256":
            eab = acme.eab_jws(kid, hmac_key, protected_overrides={"alg": "ES256"})
        response = acme.new_account(
            eab, only_return_existing=case == "only-return-existing", **knobs
        )  # type: ignore[arg-type]
        expect(response, kind)
        assert response.status_code < 500
    assert acmefleet.snapshot() == before, "a refused newAccount must not change the database"
    if case in ("wrong-hmac", "url-mismatch", "payload-other-key", "nonce-present"):
        # The credential is still usable by its rightful holder.
        with client(acmefleet) as rightful:
            assert rightful.new_account((kid, hmac_key)).status_code == 201


def test_padded_hmac_key_from_client_is_accepted(acmefleet: AcmefleetServer) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    with client(acmefleet) as acme:
        assert acme.new_account((kid, hmac_key + "=")).status_code == 201


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_eab_with_longer_macs(acmefleet: AcmefleetServer, alg: str) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    with client(acmefleet) as acme:
        response = acme.new_account(acme.eab_jws(kid, hmac_key, alg=alg))
        assert response.status_code == 201, response.text


def test_eab_payload_compared_by_thumbprint_not_bytes(acmefleet: AcmefleetServer) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    with client(acmefleet) as acme:
        reordered = dict(reversed(list(acme.key.jwk.items())))
        reordered["use"] = "sig"  # an extra member does not change the RFC 7638 thumbprint
        response = acme.new_account(acme.eab_jws(kid, hmac_key, payload=reordered))
        assert response.status_code == 201, response.text


def test_racing_new_accounts_with_one_eab_make_exactly_one_account(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.acmefleet_server import running_acmefleet

    with running_acmefleet(tmp_path, workers=2) as server:
        server.org("race", "race.example.com")
        kid, hmac_key = server.mint_eab("race", "private")
        clients = [client(server) for _ in range(10)]
        bodies = [c.eab_jws(kid, hmac_key) for c in clients]  # built before the start line
        barrier = threading.Barrier(len(clients))
        results: list[httpx.Response] = []
        lock = threading.Lock()

        def register(acme: AcmeClient, eab: dict[str, str]) -> None:
            barrier.wait()
            response = acme.new_account(eab)
            with lock:
                results.append(response)

        threads = [
            threading.Thread(target=register, args=(c, b))
            for c, b in zip(clients, bodies, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        statuses = sorted(r.status_code for r in results)
        assert statuses == [201] + [403] * 9, [r.text for r in results]
        assert all(is_problem(r, "unauthorized") for r in results if r.status_code == 403)
        assert server.count("accounts") == 1
        assert server.count("eab_credentials", kid=kid) == 1
        assert "Traceback" not in server.log_text()
        for acme in clients:
            acme.close()
