"""Request checks against a running server: JWS form, nonces, content type, CSRs.

Every refused request gets the exact RFC 8555 problem type, never a 500, and leaves
the database as it was.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.support.acme_client import AccountKey, AcmeClient, b64url, make_csr, problem_type
from tests.support.acmefleet_server import AcmefleetServer

pytestmark = pytest.mark.integration
ERR = "urn:ietf:params:acme:error:"


@pytest.fixture(scope="module")
def account(acmefleet: AcmefleetServer) -> Iterator[AcmeClient]:
    acme = AcmeClient(acmefleet.directory("private"), acmefleet.ca_bundle)
    assert acme.new_account(acmefleet.mint_eab("acme", "private")).status_code == 201
    yield acme
    acme.close()


def refused(
    server: AcmefleetServer, send: object, kind: str, status: int | None = None
) -> httpx.Response:
    before = server.snapshot()
    response = send()  # type: ignore[operator]
    assert problem_type(response) == ERR + kind, (response.status_code, response.text)
    assert response.status_code < 500
    if status is not None:
        assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers.get("Replay-Nonce")
    assert server.snapshot() == before, "a refused request changed the database"
    return response


def test_replayed_nonce_is_bad_nonce(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    order_url = account.url_for("newOrder")
    first = account.new_order(["replay.example.com"])
    assert first.status_code == 201
    assert account.last_request is not None
    refused(
        acmefleet,
        lambda: account.send_jws(order_url, account.last_request.body),  # type: ignore[union-attr]
        "badNonce",
        400,
    )


def test_unknown_and_missing_nonce(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    url = account.url_for("newOrder")
    payload = {"identifiers": [{"type": "dns", "value": "n.example.com"}]}
    refused(acmefleet, lambda: account.post(url, payload, nonce="bm90LWEtbm9uY2U"), "badNonce")
    refused(
        acmefleet,
        lambda: account.post(url, payload, protected_overrides={"nonce": None}),
        "badNonce",
    )


def test_a_nonce_has_one_spelling(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    """Padding, a newline or stray final bits made other spellings of one nonce, each
    redeemable once (RFC 8555 §6.1: padded values MUST be rejected)."""
    url = account.url_for("newOrder")
    payload = {"identifiers": [{"type": "dns", "value": "spelling.example.com"}]}
    nonce = account.new_nonce()
    for spelling in (nonce + "=", nonce + "==", nonce + "\n", nonce + "==\n"):
        refused(acmefleet, lambda s=spelling: account.post(url, payload, nonce=s), "badNonce")
    assert account.post(url, payload, nonce=nonce).status_code == 201
    refused(acmefleet, lambda: account.post(url, payload, nonce=nonce), "badNonce")


def test_jws_members_have_one_spelling(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    url = account.url_for("newOrder")
    payload = {"identifiers": [{"type": "dns", "value": "members.example.com"}]}
    for member in ("protected", "payload", "signature"):
        for suffix in ("=", "==", "\n"):

            def padded(body: dict[str, str], m: str = member, s: str = suffix) -> dict[str, str]:
                return {**body, m: body[m] + s}

            refused(acmefleet, lambda t=padded: account.post(url, payload, tamper=t), "malformed")


def test_wrong_content_type(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    url = account.url_for("newOrder")
    refused(
        acmefleet,
        lambda: account.post(url, {"identifiers": []}, content_type="application/json"),
        "malformed",
        415,
    )


def test_alg_none_and_hmac_outer_jws(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    url = account.url_for("newOrder")
    payload = {"identifiers": [{"type": "dns", "value": "none.example.com"}]}
    response = refused(
        acmefleet,
        lambda: account.post(url, payload, protected_overrides={"alg": "none"}),
        "badSignatureAlgorithm",
    )
    assert "ES256" in response.json()["algorithms"]
    refused(
        acmefleet,
        lambda: account.post(url, payload, protected_overrides={"alg": "HS256"}),
        "badSignatureAlgorithm",
    )


def test_ecdsa_alg_must_name_the_account_key_curve(
    acmefleet: AcmefleetServer, account: AcmeClient
) -> None:
    """RFC 7518 §3.4: ES384 is P-384. A valid SHA-384 ECDSA signature by the account's P-256
    key, sent as "ES384", was accepted (joserfc does not tie the alg to the curve)."""
    url = account.url_for("newOrder")
    payload = {"identifiers": [{"type": "dns", "value": "curve.example.com"}]}
    private = account.key.private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp256r1"

    def sha384_on_p256(body: dict[str, str]) -> dict[str, str]:
        signing_input = f"{body['protected']}.{body['payload']}".encode()
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA384())))
        return {**body, "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}

    response = refused(
        acmefleet,
        lambda: account.post(
            url, payload, protected_overrides={"alg": "ES384"}, tamper=sha384_on_p256
        ),
        "badSignatureAlgorithm",
    )
    assert response.json()["algorithms"] == ["ES256"]


def test_jwk_and_kid_together(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    url = account.url_for("newOrder")
    refused(
        acmefleet,
        lambda: account.post(
            url, {"identifiers": []}, protected_overrides={"jwk": account.key.jwk}
        ),
        "malformed",
    )


def test_url_mismatch(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    url = account.url_for("newOrder")
    refused(
        acmefleet,
        lambda: account.post(url, {"identifiers": []}, protected_overrides={"url": url + "x"}),
        "unauthorized",
        403,
    )


def test_kid_of_another_endpoint(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    public = AcmeClient(acmefleet.directory("public"), acmefleet.ca_bundle, account.key)
    public.kid = account.kid
    with public:
        refused(acmefleet, lambda: public.new_order(["x.example.com"]), "unauthorized", 403)


def test_bad_signature(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    url = account.url_for("newOrder")
    other = AccountKey.generate()
    refused(acmefleet, lambda: account.post(url, {"identifiers": []}, key=other), "malformed")


def test_weak_account_key(acmefleet: AcmefleetServer) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    with AcmeClient(
        acmefleet.directory("private"), acmefleet.ca_bundle, AccountKey.generate("rsa1024")
    ) as weak:
        refused(acmefleet, lambda: weak.new_account((kid, hmac_key)), "badPublicKey")


def _ready_order(account: AcmeClient, names: list[str]) -> dict[str, object]:
    response = account.new_order(names)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    assert body["status"] == "ready"
    return body


def test_csr_with_a_name_not_in_the_order(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    order = _ready_order(account, ["csr1.example.com"])
    csr, _ = make_csr(["csr1.example.com", "extra.example.com"])
    response = refused(acmefleet, lambda: account.finalize(order, csr), "badCSR")
    assert "extra.example.com" in response.json()["detail"]


def test_csr_with_rsa_1024(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    order = _ready_order(account, ["csr2.example.com"])
    csr, _ = make_csr(["csr2.example.com"], key_type="rsa1024")
    refused(acmefleet, lambda: account.finalize(order, csr), "badCSR")


def test_csr_with_the_account_key(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    order = _ready_order(account, ["csr3.example.com"])
    csr, _ = make_csr(["csr3.example.com"], key=account.key.private_key)  # type: ignore[arg-type]
    refused(acmefleet, lambda: account.finalize(order, csr), "badCSR")


def test_garbage_csr_and_bodies(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    order = _ready_order(account, ["csr4.example.com"])
    refused(
        acmefleet,
        lambda: account.post(str(order["finalize"]), {"csr": b64url(b"nonsense")}),
        "badCSR",
    )
    url = account.url_for("newOrder")
    refused(acmefleet, lambda: account.send_jws(url, b"{not json"), "malformed")
    refused(acmefleet, lambda: account.send_jws(url, b'{"protected": 1}'), "malformed")
    refused(acmefleet, lambda: account.post(url, b"[1, 2]"), "malformed")
    refused(acmefleet, lambda: account.post(url, {"identifiers": "x"}), "malformed")


def test_deeply_nested_json_is_malformed(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    """100000 "[" raised RecursionError in json.loads: a 500 for the body, the protected
    header and the payload alike."""
    url = account.url_for("newOrder")
    deep = b"[" * 100_000
    refused(acmefleet, lambda: account.send_jws(url, deep), "malformed", 400)
    refused(acmefleet, lambda: account.post(url, deep), "malformed", 400)

    def deep_header(body: dict[str, str]) -> dict[str, str]:
        return {**body, "protected": b64url(b'{"alg": "ES256", "x": ' + deep)}

    refused(acmefleet, lambda: account.post(url, {}, tamper=deep_header), "malformed", 400)
    nested = {"identifiers": [{"type": "dns", "value": "x.example.com", "n": [[[[[[[[]]]]]]]]}]}
    assert account.post(url, nested).status_code == 201  # ordinary depth is fine


@pytest.mark.parametrize(
    "field", [{"notBefore": "0001-01-01T00:00:00+14:00"}, {"notAfter": "9999-12-31T23:59:59-14:00"}]
)
def test_times_beyond_datetime_are_malformed(
    acmefleet: AcmefleetServer, account: AcmeClient, field: dict[str, str]
) -> None:
    """In UTC these fall outside year 1-9999: comparing them raised OverflowError (a 500)."""
    refused(acmefleet, lambda: account.new_order(["t.example.com"], extra=field), "malformed", 400)


def test_far_future_not_before_is_refused_at_finalize(
    acmefleet: AcmefleetServer, account: AcmeClient
) -> None:
    """The validity end (notBefore + the profile's validity) does not fit a datetime."""
    response = account.new_order(["far.example.com"], extra={"notBefore": "9999-12-31T00:00:00Z"})
    if response.status_code == 201:
        csr, _ = make_csr(["far.example.com"])
        refused(acmefleet, lambda: account.finalize(response.json(), csr), "badCSR")
    else:
        assert problem_type(response) == ERR + "malformed", response.text


def test_finalize_twice_is_order_not_ready(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    order = _ready_order(account, ["twice.example.com"])
    csr, _ = make_csr(["twice.example.com"])
    assert account.finalize(order, csr).status_code == 200
    refused(acmefleet, lambda: account.finalize(order, csr), "orderNotReady", 403)


def test_oversized_body(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    url = account.url_for("newOrder")
    refused(acmefleet, lambda: account.send_jws(url, b"x" * (300 * 1024)), "malformed", 413)


def test_identifier_policy(acmefleet: AcmefleetServer, account: AcmeClient) -> None:
    refused(acmefleet, lambda: account.new_order(["www.not-ours.org"]), "rejectedIdentifier")
    refused(acmefleet, lambda: account.new_order(["bad..example.com"]), "rejectedIdentifier")
    refused(
        acmefleet,
        lambda: account.new_order([("email", "a@example.com")]),  # type: ignore[list-item]
        "unsupportedIdentifier",
    )
    # A profile this endpoint does not offer (draft-ietf-acme-profiles: invalidProfile).
    refused(
        acmefleet,
        lambda: account.new_order(["ok.example.com"], profile="public-dv"),
        "invalidProfile",
    )
    response = account.new_order([("ip", "10.20.1.5"), "*.wild.example.com"])
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "ready"
    refused(acmefleet, lambda: account.new_order([("ip", "192.0.2.1")]), "rejectedIdentifier")


@pytest.mark.parametrize(
    "name", ["evil\n.example.com", "www.example.com\n", "*.evil\n.example.com"]
)
def test_identifiers_with_a_newline_are_rejected(
    acmefleet: AcmefleetServer, account: AcmeClient, name: str
) -> None:
    """``re``'s ``$`` matched before a trailing newline: these were ordered and issued."""
    response = refused(acmefleet, lambda: account.new_order([name]), "rejectedIdentifier")
    assert response.json()["identifier"] == {"type": "dns", "value": name}


def test_unknown_resources_are_404_problems(
    acmefleet: AcmefleetServer, account: AcmeClient
) -> None:
    base = acmefleet.base_url
    for path in (
        "/acme/nope/directory",
        "/nothing",
        "/acme/private/order/zzz/x",
        "/acme/private/directory%0A",  # the ASGI path is decoded; "$" matched before "\n"
    ):
        response = account.http.get(base + path)
        assert response.status_code == 404
        assert problem_type(response) == ERR + "malformed"
    response = account.get(base + "/acme/private/order/doesnotexist")
    assert response.status_code == 404
    response = account.http.get(base + "/acme/private/new-order")
    assert response.status_code == 405
