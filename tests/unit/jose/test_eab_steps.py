"""RFC 8555 §7.3.4 EAB checks, one test per step (no database involved)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from joserfc.jwk import ECKey

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.jose.b64 import b64url_decode, b64url_encode
from acmefleet.jose.eab import parse_eab, verify_eab
from acmefleet.jose.keys import thumbprint

URL = "https://acme.example/acme/private/new-account"
HMAC_KEY = b64url_encode(b"k" * 32)
ACCOUNT = ECKey.generate_key("P-256").as_dict(private=False)


def binding(
    protected: dict[str, object], payload: object = ACCOUNT, key: str = HMAC_KEY
) -> dict[str, str]:
    header = b64url_encode(json.dumps(protected).encode())
    body = b64url_encode(json.dumps(payload).encode())
    digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(
        str(protected.get("alg")), hashlib.sha256
    )
    mac = hmac.new(b64url_decode(key), f"{header}.{body}".encode(), digest).digest()
    return {"protected": header, "payload": body, "signature": b64url_encode(mac)}


def good(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"alg": "HS256", "kid": "kid-1", "url": URL}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def failure(value: object) -> ProblemType:
    with pytest.raises(AcmeError) as caught:
        request = parse_eab(value, URL)
        verify_eab(request, HMAC_KEY, thumbprint(ACCOUNT))
    return caught.value.type


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_valid_binding(alg: str) -> None:
    request = parse_eab(binding(good(alg=alg)), URL)
    verify_eab(request, HMAC_KEY, thumbprint(ACCOUNT))
    verify_eab(request, HMAC_KEY + "=", thumbprint(ACCOUNT))  # padded key input is accepted


def test_missing_binding_is_external_account_required() -> None:
    assert failure(None) is ProblemType.EXTERNAL_ACCOUNT_REQUIRED


def test_step1_flattened_jws() -> None:
    assert failure({"protected": "x"}) is ProblemType.MALFORMED


def test_step2_mac_algorithm_only() -> None:
    assert failure(binding(good(alg="ES256"))) is ProblemType.BAD_SIGNATURE_ALGORITHM


def test_step3_kid_and_no_nonce() -> None:
    assert failure(binding(good(kid=None))) is ProblemType.MALFORMED
    assert failure(binding(good(nonce="abc"))) is ProblemType.MALFORMED


def test_step4_url_equals_outer_url() -> None:
    assert failure(binding(good(url=URL + "x"))) is ProblemType.UNAUTHORIZED


def test_step5_mac_must_verify() -> None:
    assert failure(binding(good(), key=b64url_encode(b"x" * 32))) is ProblemType.UNAUTHORIZED


def test_step6_payload_is_the_account_key_by_thumbprint() -> None:
    other = ECKey.generate_key("P-256").as_dict(private=False)
    assert failure(binding(good(), payload=other)) is ProblemType.UNAUTHORIZED
    shuffled = {**dict(reversed(list(ACCOUNT.items()))), "use": "sig"}
    request = parse_eab(binding(good(), payload=shuffled), URL)
    verify_eab(request, HMAC_KEY, thumbprint(ACCOUNT))
