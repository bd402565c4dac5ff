"""Authorization reuse against a real server, with the organisation scope: what one account
proved by http-01 gives a colleague's order (same organisation, same endpoint) a valid
authorization of its own and a certificate without a challenge; another organisation's
account must still prove it. (The window, its bounds and wildcards: tests/unit/policy/
test_authorization_reuse.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import checked_acmefleet
from tests.support.console import Http01Responder

pytestmark = pytest.mark.integration
NAME = "reuse.example.com"


def test_a_colleague_reuses_the_proof_another_organisation_does_not(tmp_path: Path) -> None:
    settings = {"authorization_reuse_scope": '"organisation"'}
    with checked_acmefleet(tmp_path, settings=settings) as server:
        server.org("other", "example.com")  # another organisation owning the same domain
        responder = Http01Responder(server.http01_port)
        clients: dict[str, AcmeClient] = {}
        try:
            for who in ("first", "colleague", "stranger"):
                clients[who] = AcmeClient(server.directory("public"), server.ca_bundle)
            for who, client in clients.items():
                org = "other" if who == "stranger" else "acme"
                assert client.new_account(server.mint_eab(org, "public")).status_code == 201
            clients["first"].issue_certificate([NAME], respond_http01=responder.respond)
            proved = len(responder.requests)
            assert proved >= 1

            colleague = clients["colleague"]
            created = colleague.new_order([NAME])
            assert created.status_code == 201 and created.json()["status"] == "ready"
            [authz_url] = created.json()["authorizations"]
            authz = colleague.get(authz_url)
            assert authz.status_code == 200, "its own authorization, fetchable by it"
            assert authz.json()["status"] == "valid"
            assert [c["status"] for c in authz.json()["challenges"]] == ["valid"]
            # The whole issuance, without the server connecting anywhere.
            assert "BEGIN CERTIFICATE" in colleague.issue_certificate([NAME])
            assert len(responder.requests) == proved

            stranger = clients["stranger"].new_order([NAME])
            assert stranger.status_code == 201 and stranger.json()["status"] == "pending"
        finally:
            responder.close()
            for client in clients.values():
                client.close()
