"""RFC 8555 resources end to end with the test client: accounts, orders, challenges, revocation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.acme_client import AccountKey, AcmeClient, make_csr, problem_type
from tests.support.acmefleet_server import AcmefleetServer

pytestmark = pytest.mark.integration
ERR = "urn:ietf:params:acme:error:"


def new_client(server: AcmefleetServer, endpoint: str = "private") -> AcmeClient:
    acme = AcmeClient(server.directory(endpoint), server.ca_bundle)
    response = acme.new_account(server.mint_eab("acme", endpoint), contact=["mailto:a@example.com"])
    assert response.status_code == 201, response.text
    return acme


class ChallengeResponder:
    """A real web server on the port the ACME server validates http-01 against."""

    def __init__(self, port: int) -> None:
        self.answers: dict[str, str] = {}
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("/", 1)[-1]
                body = answers.get(token)
                self.send_response(200 if body else 404)
                self.end_headers()
                if body:
                    self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def respond(self, token: str, key_authorization: str) -> None:
        self.answers[token] = key_authorization

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def responder(acmefleet: AcmefleetServer) -> Iterator[ChallengeResponder]:
    web = ChallengeResponder(acmefleet.http01_port)
    yield web
    web.close()


def test_account_update_and_deactivation(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        fetched = acme.account()
        assert fetched.status_code == 200
        assert fetched.json()["contact"] == ["mailto:a@example.com"]
        updated = acme.update_account({"contact": ["mailto:b@example.com"]})
        assert updated.json()["contact"] == ["mailto:b@example.com"]
        bad = acme.update_account({"contact": ["tel:+1555"]})
        assert problem_type(bad) == ERR + "unsupportedContact"
        bad = acme.update_account({"contact": ["mailto:not an address"]})
        assert problem_type(bad) == ERR + "invalidContact"
        # §7.3.2: a client that echoes the account object back is not refused for "status".
        echoed = acme.update_account({**acme.account().json(), "contact": ["mailto:c@example.com"]})
        assert echoed.status_code == 200, echoed.text
        assert echoed.json()["status"] == "valid"
        assert echoed.json()["contact"] == ["mailto:c@example.com"]
        assert acme.deactivate().json()["status"] == "deactivated"
        # §7.3.6: every request of a deactivated account is 401 unauthorized, newAccount
        # with its key too (it used to answer 200 and the account's URL).
        after = acme.new_order(["gone.example.com"])
        assert after.status_code == 401 and problem_type(after) == ERR + "unauthorized"
        again = acme.new_account(None, only_return_existing=True)
        assert again.status_code == 401 and problem_type(again) == ERR + "unauthorized"
        again = acme.new_account(acmefleet.mint_eab("acme", "private"))
        assert again.status_code == 401 and problem_type(again) == ERR + "unauthorized"


def test_unknown_profile_is_invalid_profile(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        refused = acme.new_order(["profile.example.com"], profile="no-such-profile")
        assert problem_type(refused) == ERR + "invalidProfile", refused.text
        assert refused.status_code == 400
        assert acme.new_order(["profile.example.com"], profile="private-server").status_code == 201


def test_key_change(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme, new_client(acmefleet) as other:
        old_key = acme.key
        taken = acme.key_change(other.key)
        assert taken.status_code == 409, taken.text
        assert taken.headers["Location"] == other.kid
        new_key = AccountKey.generate("ec384")
        assert acme.key_change(new_key).status_code == 200
        assert acme.new_order(["rolled.example.com"]).status_code == 201
        stale = AcmeClient(acme.directory_url, acmefleet.ca_bundle, old_key)
        with stale:
            stale.kid = acme.kid
            assert stale.new_order(["x.example.com"]).status_code >= 400
            found = stale.new_account(None, only_return_existing=True)
            assert problem_type(found) == ERR + "accountDoesNotExist"


def test_orders_list_and_certificate_download(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        chain = acme.issue_certificate(["dl.example.com", ("ip", "10.20.3.4")])
        assert chain.count("BEGIN CERTIFICATE") == 2
        leaf = x509.load_pem_x509_certificate(chain.encode())
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["dl.example.com"]
        assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.20.3.4"]
        orders = acme.get(acme.account().json()["orders"])
        assert orders.status_code == 200
        assert len(orders.json()["orders"]) == 1


def test_certificate_and_order_are_private_to_the_account(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as owner, new_client(acmefleet) as stranger:
        created = owner.new_order(["mine.example.com"])
        order_url = created.headers["Location"]
        assert stranger.get(order_url).status_code == 404
        assert stranger.get(created.json()["authorizations"][0]).status_code == 404


def test_http01_validation_and_failure(
    acmefleet: AcmefleetServer, responder: ChallengeResponder
) -> None:
    with new_client(acmefleet, "public") as acme:
        chain = acme.issue_certificate(["web.example.org"], respond_http01=responder.respond)
        assert "BEGIN CERTIFICATE" in chain
        # A wrong key authorization makes the authorization and the order invalid.
        created = acme.new_order(["wrong.example.org"])
        authz = acme.get(created.json()["authorizations"][0]).json()
        challenge = authz["challenges"][0]
        assert challenge["type"] == "http-01" and authz["status"] == "pending"
        responder.respond(challenge["token"], "not-the-key-authorization")
        answered = acme.answer_challenge(challenge["url"])
        assert answered.status_code == 200
        assert answered.headers["Retry-After"]
        assert 'rel="up"' in answered.headers["Link"]
        final = acme.poll(created.headers["Location"], ("invalid", "valid"))
        assert final["status"] == "invalid"
        assert final["error"]["type"] == ERR + "incorrectResponse"
        # Nobody answering: unauthorized (404 from the web server).
        created = acme.new_order(["silent.example.org"])
        authz_url = created.json()["authorizations"][0]
        challenge = acme.get(authz_url).json()["challenges"][0]
        acme.answer_challenge(challenge["url"])
        failed = acme.poll(authz_url, ("invalid", "valid"))
        assert failed["challenges"][0]["error"]["type"] == ERR + "unauthorized"


def test_valid_authorization_lists_the_validated_challenge(
    acmefleet: AcmefleetServer, responder: ChallengeResponder
) -> None:
    """RFC 8555 §7.1.4: "for valid authorizations, the challenge that was validated"."""
    with new_client(acmefleet, "public") as acme:
        created = acme.new_order(["listed.example.org"])
        authz_url = created.json()["authorizations"][0]
        challenge = acme.get(authz_url).json()["challenges"][0]
        responder.respond(challenge["token"], acme.key.key_authorization(challenge["token"]))
        acme.answer_challenge(challenge["url"])
        valid = acme.poll(authz_url, ("invalid", "valid"))
        assert valid["status"] == "valid"
        [listed] = valid["challenges"]
        assert listed["url"] == challenge["url"] and listed["status"] == "valid"
        assert listed["validated"]


def test_public_ip_is_refused_and_a_wildcard_gets_dns01_only(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet, "public") as acme:
        refused = acme.new_order([("ip", "192.0.2.7")])
        assert problem_type(refused) == ERR + "rejectedIdentifier"
        wildcard = acme.new_order(["*.example.org"])
        assert wildcard.status_code == 201, wildcard.text
        authz = acme.get(wildcard.json()["authorizations"][0]).json()
        assert authz["wildcard"] is True and authz["identifier"]["value"] == "example.org"
        assert [c["type"] for c in authz["challenges"]] == ["dns-01"]


def test_prevalidated_domain_needs_no_challenge(acmefleet: AcmefleetServer) -> None:
    # Vouched for with its subtree: www. and the wildcard under it need no challenge either.
    acmefleet.add_domain("acme", "prevalidated.example.net", validated=True, scope="subdomains")
    with new_client(acmefleet, "public") as acme:
        created = acme.new_order(["www.prevalidated.example.net", "*.prevalidated.example.net"])
        assert created.json()["status"] == "ready", created.text
        for url in created.json()["authorizations"]:
            authz = acme.get(url).json()
            assert authz["status"] == "valid" and authz["challenges"] == []


def test_authorization_deactivation(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet, "public") as acme:
        created = acme.new_order(["deact.example.org"])
        authz_url = created.json()["authorizations"][0]
        assert acme.deactivate_authorization(authz_url).json()["status"] == "deactivated"
        assert acme.get(created.headers["Location"]).json()["status"] == "invalid"


def test_revocation_by_account_and_by_certificate_key(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme, new_client(acmefleet) as other:
        key = AccountKey.generate().private_key
        chain = acme.issue_certificate(["rev1.example.com"], csr_key=key)  # type: ignore[arg-type]
        der = x509.load_pem_x509_certificate(chain.encode()).public_bytes(Encoding.DER)
        refused = other.revoke(der)
        assert refused.status_code == 403
        bad_reason = acme.revoke(der, reason=2)
        assert problem_type(bad_reason) == ERR + "badRevocationReason"
        assert acme.revoke(der, reason=4).status_code == 200
        assert problem_type(acme.revoke(der)) == ERR + "alreadyRevoked"
        chain2 = acme.issue_certificate(["rev2.example.com"], csr_key=key)  # type: ignore[arg-type]
        der2 = x509.load_pem_x509_certificate(chain2.encode()).public_bytes(Encoding.DER)
        by_key = other.revoke(der2, reason=1, use_cert_key=key)  # type: ignore[arg-type]
        assert by_key.status_code == 200, by_key.text
    crl_response = __import__("httpx").get(f"http://127.0.0.1:{acmefleet.pki_port}/pki/private/crl")
    crl = x509.load_der_x509_crl(crl_response.content)
    serials = {entry.serial_number for entry in crl}
    assert x509.load_der_x509_certificate(der).serial_number in serials
    assert x509.load_der_x509_certificate(der2).serial_number in serials


def test_finalize_with_rsa_and_p384_keys(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        for key_type in ("rsa2048", "ec384"):
            chain = acme.issue_certificate([f"{key_type}.example.com"], key_type=key_type)  # type: ignore[arg-type]
            assert "BEGIN CERTIFICATE" in chain


def test_new_nonce_and_directory(acmefleet: AcmefleetServer) -> None:
    with AcmeClient(acmefleet.directory("public"), acmefleet.ca_bundle) as acme:
        directory = acme.directory
        assert directory["meta"]["externalAccountRequired"] is True
        assert "public-dv" in directory["meta"]["profiles"]
        head = acme.http.head(directory["newNonce"])
        assert head.status_code == 200 and head.headers["Replay-Nonce"]
        assert head.headers["Cache-Control"] == "no-store"
        get = acme.http.get(directory["newNonce"])
        assert (
            get.status_code == 204 and get.headers["Replay-Nonce"] != head.headers["Replay-Nonce"]
        )
        # §6.3: POST-as-GET works for every resource, these two included.
        posted = acme.post(acme.directory_url, None)
        assert posted.status_code == 200 and posted.json()["newNonce"] == directory["newNonce"]
        posted = acme.post(directory["newNonce"], None)
        assert posted.status_code == 204 and posted.headers["Replay-Nonce"]
        csr, _ = make_csr(["x.example.org"])
        assert csr


@pytest.mark.parametrize("key_type", ["rsa2048", "ec384", "ec521", "ed25519"])
def test_account_key_algorithms(acmefleet: AcmefleetServer, key_type: str) -> None:
    """RS256, ES384, ES512 and EdDSA account keys register, order and finalize."""
    acme = AcmeClient(
        acmefleet.directory("private"), acmefleet.ca_bundle, AccountKey.generate(key_type)
    )  # type: ignore[arg-type]
    with acme:
        assert acme.new_account(acmefleet.mint_eab("acme", "private")).status_code == 201
        chain = acme.issue_certificate([f"{key_type}-acct.example.com"])
        assert "BEGIN CERTIFICATE" in chain
