"""RFC 8555 §7.3.5 keyChange inner-JWS checks, one test per step (no database involved)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.jose.b64 import b64url_encode
from acmefleet.jose.eab import parse_eab
from acmefleet.jose.keychange import KeyChange, parse_key_change
from acmefleet.jose.keys import KeyCache, thumbprint

URL = "https://acme.example/acme/private/key-change"
ACCOUNT_URL = "https://acme.example/acme/private/acct/a1"
OLD = ECKey.generate_key("P-256").as_dict(private=False)
NEW = ECKey.generate_key("P-256")


def inner(header: dict[str, Any], payload: object = None, key: ECKey = NEW) -> dict[str, Any]:
    """A flattened JWS signed by ``key``, whatever ``header`` says."""
    body = {"account": ACCOUNT_URL, "oldKey": OLD} if payload is None else payload
    registry = jws.JWSRegistry(strict_check_header=False, algorithms=[str(header["alg"])])
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return dict(jws.serialize_json({"protected": header}, raw, key, registry=registry))


def encoded(protected: dict[str, object]) -> str:
    return b64url_encode(json.dumps(protected).encode())


def header(**changes: object) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": "ES256", "jwk": NEW.as_dict(private=False), "url": URL}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def parse(body: object) -> KeyChange:
    return parse_key_change(body, outer_url=URL, account_url=ACCOUNT_URL, keys=KeyCache())


def failure(body: object, match: str | None = None) -> ProblemType:
    """The problem type refusing ``body``; ``match`` pins which check refused it."""
    with pytest.raises(AcmeError, match=match) as caught:
        parse(body)
    return caught.value.type


def test_valid_key_change() -> None:
    change = parse(inner(header()))
    assert change.new_key.thumbprint == thumbprint(NEW.as_dict(private=False))
    assert change.old_key == OLD


def test_step1_flattened_jws() -> None:
    assert failure({"protected": "x"}, "keyChange inner JWS") is ProblemType.MALFORMED
    assert failure({**inner(header()), "header": {}}) is ProblemType.MALFORMED
    assert failure({**inner(header()), "payload": "***"}) is ProblemType.MALFORMED


@pytest.mark.parametrize("alg", ["none", "HS256", None, ["ES256"]])
def test_step2_asymmetric_algorithm(alg: object) -> None:
    raw = {"protected": encoded(header(alg=alg)), "payload": "", "signature": ""}
    assert failure(raw) is ProblemType.BAD_SIGNATURE_ALGORITHM


def test_step3_jwk_and_no_kid() -> None:
    assert failure(inner(header(jwk=None)), "'jwk'") is ProblemType.MALFORMED
    assert failure(inner(header(kid=ACCOUNT_URL)), "'jwk'") is ProblemType.MALFORMED


def test_step4_no_nonce() -> None:
    assert failure(inner(header(nonce="n")), "'nonce'") is ProblemType.MALFORMED


def test_step5_url_equals_outer_url() -> None:
    assert failure(inner(header(url=URL + "x")), "inner 'url'") is ProblemType.UNAUTHORIZED
    assert failure(inner(header(url=None)), "inner 'url'") is ProblemType.UNAUTHORIZED


def test_step6_jwk_is_an_acceptable_key() -> None:
    private = NEW.as_dict(private=True)
    assert failure(inner(header(jwk=private)), "private") is ProblemType.BAD_PUBLIC_KEY
    k1 = ECKey.generate_key("secp256k1").as_dict(private=False)
    assert failure(inner(header(jwk=k1)), "curve") is ProblemType.BAD_PUBLIC_KEY


def test_step7_signed_by_the_new_key() -> None:
    other = ECKey.generate_key("P-256")
    assert failure(inner(header(), key=other), "does not verify") is ProblemType.MALFORMED
    # An allowed alg that does not fit the jwk's key type (EC key, RSA alg).
    mismatched = {**inner(header()), "protected": encoded(header(alg="RS256"))}
    assert failure(mismatched) is ProblemType.BAD_SIGNATURE_ALGORITHM


def test_step8_payload_names_the_signing_account() -> None:
    assert failure(inner(header(), payload=b"not json"), "not valid JSON") is ProblemType.MALFORMED
    assert failure(inner(header(), payload=[ACCOUNT_URL]), "JSON object") is ProblemType.MALFORMED
    moved = {"account": ACCOUNT_URL + "x", "oldKey": OLD}
    assert failure(inner(header(), payload=moved), "'account'") is ProblemType.UNAUTHORIZED
    assert (
        failure(inner(header(), payload={"oldKey": OLD}), "'account'") is ProblemType.UNAUTHORIZED
    )


def test_shared_rules_refuse_an_unhashable_alg_in_eab_too() -> None:
    """jose.inner checks EAB and keyChange alike: a list as 'alg' is refused, not a crash."""
    mac = OctKey.generate_key(256)
    registry = jws.JWSRegistry(strict_check_header=False, algorithms=["HS256"])
    binding = jws.serialize_json(
        {"protected": {"alg": "HS256", "kid": "k", "url": URL}}, b"{}", mac, registry=registry
    )
    binding["protected"] = encoded({"alg": ["HS256"], "kid": "k", "url": URL})
    with pytest.raises(AcmeError) as caught:
        parse_eab(binding, URL)
    assert caught.value.type is ProblemType.BAD_SIGNATURE_ALGORITHM
