"""The test ACME client (tests/support/acme_client.py) against Debian's real pebble.

Proves the client end to end (EAB account, issuance, revocation, key change,
deactivation) and that its negative-test knobs produce the requests a real
server rejects, so acmefleet's negative tests can trust them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509
from joserfc import jws
from joserfc.jwk import OKPKey

from tests.support.acme_client import (
    DELETE,
    AccountKey,
    AcmeClient,
    b64url,
    decode_jws_part,
    generate_private_key,
    make_csr,
    pem_to_der_chain,
    problem_type,
    sign_jws,
)
from tests.support.fixtures import ClientFactory, acme_client_factory, pebble_fixture
from tests.support.pebble import PebbleServer
from tests.support.procs import tls_context

pytestmark = pytest.mark.integration

pebble = pebble_fixture(scope="module", eab_count=4)

ERR = "urn:ietf:params:acme:error:"


@pytest.fixture
def make_client(pebble: PebbleServer) -> Iterator[ClientFactory]:
    yield from acme_client_factory(pebble.directory_url, pebble.ca_bundle)


@pytest.fixture
def account(pebble: PebbleServer, make_client: ClientFactory) -> AcmeClient:
    client = make_client()
    response = client.new_account(eab=pebble.next_eab())
    assert response.status_code == 201, response.text
    return client


def cert_status(pebble: PebbleServer, cert_der: bytes) -> str:
    serial = format(x509.load_der_x509_certificate(cert_der).serial_number, "x")
    with httpx.Client(verify=tls_context(pebble.ca_bundle), trust_env=False) as http:
        response = http.get(f"{pebble.management_url}/cert-status-by-serial/{serial}")
    response.raise_for_status()
    return str(response.json()["Status"])


# ------------------------------------------------------------------ happy path


def test_directory_and_nonce(make_client: ClientFactory) -> None:
    client = make_client()
    assert client.directory["meta"]["externalAccountRequired"] is True
    first, second = client.new_nonce(), client.new_nonce()
    assert first and second and first != second


def test_eab_account_creation(pebble: PebbleServer, make_client: ClientFactory) -> None:
    client = make_client()
    kid, hmac_key = pebble.next_eab()
    response = client.new_account(eab=(kid, hmac_key), contact=["mailto:ops@example.com"])
    assert response.status_code == 201, response.text
    assert client.kid == response.headers["Location"]
    body = response.json()
    assert body["status"] == "valid"
    assert decode_jws_part(body["externalAccountBinding"]["payload"]) == client.key.jwk

    again = client.new_account(only_return_existing=True)
    assert again.status_code == 200
    assert again.headers["Location"] == client.kid


@pytest.mark.parametrize("key_type", ["ec256", "ec384", "ec521", "rsa2048"])
def test_account_key_types(pebble: PebbleServer, make_client: ClientFactory, key_type: str) -> None:
    client = make_client(AccountKey.generate(key_type))  # type: ignore[arg-type]
    assert client.new_account(eab=pebble.next_eab()).status_code == 201
    assert client.account().status_code == 200


def test_padded_hmac_key_is_accepted(pebble: PebbleServer, make_client: ClientFactory) -> None:
    kid, hmac_key = pebble.next_eab()
    padded = hmac_key + "=" * (-len(hmac_key) % 4)
    assert make_client().new_account(eab=(kid, padded)).status_code == 201


def test_issue_two_names(account: AcmeClient) -> None:
    served: dict[str, str] = {}
    names = ["www.example.com", "api.example.com"]
    pem = account.issue_certificate(names, respond_http01=served.__setitem__)

    chain = [x509.load_der_x509_certificate(der) for der in pem_to_der_chain(pem)]
    assert len(chain) >= 2
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
    for token, key_authz in served.items():  # pebble may reuse valid authzs
        assert key_authz == f"{token}.{account.key.thumbprint()}"


def test_revocation_by_account_and_by_cert_key(pebble: PebbleServer, account: AcmeClient) -> None:
    first = pem_to_der_chain(account.issue_certificate(["rev1.example.com"]))[0]
    assert account.revoke(first, reason=1).status_code == 200
    assert cert_status(pebble, first) == "Revoked"
    assert problem_type(account.revoke(first)) == ERR + "alreadyRevoked"

    cert_key = generate_private_key("ec256")
    second = pem_to_der_chain(account.issue_certificate(["rev2.example.com"], csr_key=cert_key))[0]
    assert account.revoke(second, reason=4, use_cert_key=cert_key).status_code == 200
    assert cert_status(pebble, second) == "Revoked"


def test_key_change(pebble: PebbleServer, account: AcmeClient, make_client: ClientFactory) -> None:
    old_key, new_key = account.key, AccountKey.generate("ec384")
    response = account.key_change(new_key)
    assert response.status_code == 200, response.text
    assert account.key is new_key
    assert account.account().status_code == 200

    stale = make_client(old_key)
    lookup = stale.new_account(only_return_existing=True)
    assert problem_type(lookup) == ERR + "accountDoesNotExist"
    fresh = make_client(new_key)
    assert fresh.new_account(only_return_existing=True).headers["Location"] == account.kid


def test_deactivation(account: AcmeClient) -> None:
    response = account.deactivate()
    assert response.status_code == 200
    assert response.json()["status"] == "deactivated"
    after = account.account()
    assert after.status_code == 403
    assert problem_type(after) == ERR + "unauthorized"


# ------------------------------------------------------------------ negative knobs


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"alg": "none"}, "malformed"),
        ({"kid": "https://127.0.0.1/acct/1"}, "malformed"),  # jwk and kid together
        ({"url": "https://127.0.0.1/wrong"}, "malformed"),
        ({"nonce": DELETE}, "badNonce"),
        ({"nonce": "bm90LWEtbm9uY2U"}, "badNonce"),
    ],
)
def test_outer_jws_overrides_are_rejected(
    pebble: PebbleServer, make_client: ClientFactory, overrides: dict[str, object], problem: str
) -> None:
    response = make_client().new_account(eab=pebble.next_eab(), protected_overrides=overrides)
    assert response.status_code == 400
    assert problem_type(response) == ERR + problem


def test_reused_nonce_and_replay(account: AcmeClient) -> None:
    used = account.last_nonce
    assert problem_type(account.post(account.kid or "", None, nonce=used)) == ERR + "badNonce"
    sent = account.last_request
    assert sent is not None and sent.protected["nonce"] == used
    assert problem_type(account.send_jws(sent.url, sent.body)) == ERR + "badNonce"


def test_wrong_content_type_and_bad_signature(
    pebble: PebbleServer, make_client: ClientFactory
) -> None:
    client = make_client()
    response = client.new_account(eab=pebble.next_eab(), content_type="application/json")
    assert response.status_code == 415

    def flip(body: dict[str, str]) -> dict[str, str]:
        return {**body, "signature": body["signature"][::-1]}

    response = client.new_account(eab=pebble.next_eab(), tamper=flip)
    assert problem_type(response) == ERR + "malformed"
    assert client.kid is None


@pytest.mark.parametrize("knob", ["nonce", "url", "payload", "hmac", "kid", "alg"])
def test_bad_eab_is_rejected(pebble: PebbleServer, make_client: ClientFactory, knob: str) -> None:
    client = make_client()
    kid, hmac_key = pebble.next_eab()
    variants = {
        "nonce": lambda: client.eab_jws(kid, hmac_key, nonce=client.new_nonce()),
        "url": lambda: client.eab_jws(kid, hmac_key, url=client.url_for("newOrder")),
        "payload": lambda: client.eab_jws(kid, hmac_key, payload=AccountKey.generate().jwk),
        "hmac": lambda: client.eab_jws(kid, b64url(b"\x00" * 32)),
        "kid": lambda: client.eab_jws("no-such-kid", hmac_key),
        "alg": lambda: client.eab_jws(kid, hmac_key, alg="none"),
    }
    response = client.new_account(eab=variants[knob]())
    assert response.status_code in (400, 403), response.text
    assert client.kid is None


def test_finalize_before_ready(account: AcmeClient) -> None:
    order = account.new_order([("dns", "pending.example.com")]).json()
    csr, _ = make_csr(["pending.example.com"])
    assert problem_type(account.finalize(order, csr)) == ERR + "orderNotReady"


# ------------------------------------------------------------------ client-only checks


def test_eddsa_jws_verifies_with_joserfc() -> None:
    key = AccountKey.generate("ed25519")
    assert key.alg == "EdDSA"
    body = sign_jws(
        {"alg": "EdDSA", "jwk": key.jwk, "nonce": "n", "url": "https://x/"}, b'{"a":1}', key
    )
    registry = jws.JWSRegistry(algorithms=["EdDSA"], strict_check_header=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc flags EdDSA as deprecated (RFC 9864)
        public = OKPKey.import_key(dict[str, Any](key.jwk))
        result = jws.deserialize_json(body, public, registry=registry)  # type: ignore[call-overload]
    assert result.payload == b'{"a":1}'


def test_alg_none_is_hand_built() -> None:
    body = sign_jws({"alg": "none", "url": "https://x/"}, b"", AccountKey.generate())
    assert body["signature"] == "" and body["payload"] == ""
    assert decode_jws_part(body["protected"]) == {"alg": "none", "url": "https://x/"}
