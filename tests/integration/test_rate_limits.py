"""Rate limits, each against a server of its own with small limits: refused fast with
rateLimited and Retry-After, counted across the whole server, refusals not counted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.acme_client import AcmeClient, problem_type
from tests.support.acmefleet_server import AcmefleetServer, running_acmefleet

pytestmark = pytest.mark.integration
RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"
UNAUTHORIZED = "urn:ietf:params:acme:error:unauthorized"
LIMITS = {
    "new_accounts_per_address": '"4/1h"',
    "eab_failures_per_address": '"5/1h"',
    "eab_failures_per_credential": '"2/1h"',
    "new_orders_per_account": '"3/1h"',
    "new_orders_per_organisation": '"5/1h"',
    "pending_authorizations_per_account": "4",
    "failed_validations_per_account": '"2/1h"',
}


# A test needs at most this long from its first counted request to its last check.
TEST_SPAN_S = 90


def _inside_one_window(window_s: int = 3600) -> None:
    """Wait for the next window if the current one ends within TEST_SPAN_S: the limits are
    fixed windows aligned to the epoch (hours here), so a test that counted two failures
    either side of 02:00:00 UTC saw two windows of one failure each, and no refusal."""
    left = window_s - time.time() % window_s
    if left < TEST_SPAN_S:
        time.sleep(left + 1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AcmefleetServer]:
    with running_acmefleet(tmp_path, settings=LIMITS) as started:
        _inside_one_window()
        started.org("limited", "limited.example.com")
        started.org("other", "other.example.com")
        yield started


def _client(server: AcmefleetServer, org: str = "limited", endpoint: str = "private") -> AcmeClient:
    client = AcmeClient(server.directory(endpoint), server.ca_bundle)
    created = client.new_account(server.mint_eab(org, endpoint))
    assert created.status_code == 201, created.text
    return client


def _refused(response: object, limit_words: str) -> None:
    assert problem_type(response) == RATE_LIMITED, getattr(response, "text", response)  # type: ignore[arg-type]
    assert response.status_code == 429  # type: ignore[attr-defined]
    retry = int(response.headers["Retry-After"])  # type: ignore[attr-defined]
    assert 1 <= retry <= 3600
    assert limit_words in response.json()["detail"]  # type: ignore[attr-defined]


def test_new_orders_per_account_and_per_organisation(server: AcmefleetServer) -> None:
    with _client(server) as first, _client(server) as second:
        for n in range(3):
            assert first.new_order([f"o{n}.limited.example.com"]).status_code == 201
        _refused(first.new_order(["o3.limited.example.com"]), "at most 3 per hour")
        _refused(first.new_order(["o4.limited.example.com"]), "new orders")
        assert server.count("rate_counters") >= 1
        # The refusals used nothing up: the organisation has counted 3 of its 5.
        assert second.new_order(["p0.limited.example.com"]).status_code == 201
        assert second.new_order(["p1.limited.example.com"]).status_code == 201
        _refused(second.new_order(["p2.limited.example.com"]), "for this organisation")
    with _client(server, "other") as elsewhere:  # another organisation is not affected
        assert elsewhere.new_order(["x.other.example.com"]).status_code == 201


def test_pending_authorizations_per_account(server: AcmefleetServer) -> None:
    server.add_domain("limited", "pending.example.org")
    with _client(server, endpoint="public") as acme:
        names = [f"p{n}.pending.example.org" for n in range(3)]
        assert acme.new_order(names).status_code == 201  # three pending authorizations
        before = server.count("authorizations")
        _refused(
            acme.new_order(["p3.pending.example.org", "p4.pending.example.org"]),
            "pending authorizations",
        )
        assert server.count("authorizations") == before  # nothing half-created
        assert acme.new_order(["p3.pending.example.org"]).status_code == 201  # exactly 4


def test_eab_failures_are_counted_though_they_roll_back(server: AcmefleetServer) -> None:
    kid, hmac_key = server.mint_eab("limited", "private")
    wrong = "A" * len(hmac_key)
    with AcmeClient(server.directory("private"), server.ca_bundle) as acme:
        for _ in range(2):
            refused = acme.new_account((kid, wrong))
            assert problem_type(refused) == UNAUTHORIZED, refused.text
        # Third try, even with the right key: the credential's attempts are used up.
        _refused(acme.new_account((kid, hmac_key)), "failed attempts with this EAB")
        assert server.count("accounts") == 0
        assert server.count("eab_credentials", kid=kid, account_id=None) == 1  # still unused
        # Per address: three more failures on other key ids, then even those are refused.
        for _ in range(3):
            other_kid, _key = server.mint_eab("limited", "private")
            assert problem_type(acme.new_account((other_kid, wrong))) == UNAUTHORIZED
        fresh_kid, fresh_key = server.mint_eab("limited", "private")
        _refused(acme.new_account((fresh_kid, fresh_key)), "failed EAB attempts")


def test_new_accounts_per_address(server: AcmefleetServer) -> None:
    clients = [_client(server) for _ in range(4)]
    try:
        kid, hmac_key = server.mint_eab("limited", "private")
        with AcmeClient(server.directory("private"), server.ca_bundle) as fifth:
            # No proxy is trusted by default: a forged X-Forwarded-For changes nothing.
            fifth.http.headers["X-Forwarded-For"] = "198.51.100.7"
            _refused(fifth.new_account((kid, hmac_key)), "new accounts from this address")
        assert server.count("accounts") == 4
        assert server.count("eab_credentials", kid=kid, account_id=None) == 1  # not consumed
        # An existing account is found whatever the limit (RFC 8555 §7.3.1).
        again = clients[0].new_account(None, only_return_existing=True)
        assert again.status_code == 200
    finally:
        for client in clients:
            client.close()


def test_failed_validations_per_account(server: AcmefleetServer) -> None:
    """Nothing answers on the http-01 port: each validation fails; the third is refused
    before the server connects anywhere."""
    server.add_domain("limited", "failing.example.org")
    with _client(server, endpoint="public") as acme:
        for n in range(2):
            created = acme.new_order([f"f{n}.failing.example.org"])
            authz_url = created.json()["authorizations"][0]
            challenge = acme.get(authz_url).json()["challenges"][0]
            assert acme.answer_challenge(challenge["url"]).status_code == 200
            assert acme.poll(authz_url, ("invalid", "valid"))["status"] == "invalid"
        created = acme.new_order(["f2.failing.example.org"])
        authz_url = created.json()["authorizations"][0]
        challenge = acme.get(authz_url).json()["challenges"][0]
        _refused(acme.answer_challenge(challenge["url"]), "failed validations")
        assert acme.get(authz_url).json()["challenges"][0]["status"] == "pending"
