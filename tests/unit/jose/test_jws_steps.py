"""RFC 8555 §6.2 request checks, one test per step."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.jose.b64 import b64url_encode
from acmefleet.jose.jws import parse_request_jws, verify_signature
from acmefleet.jose.keys import KeyCache, import_account_key, thumbprint

URL = "https://acme.example/acme/private/new-order"
EC = ECKey.generate_key("P-256")
CURVE_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


def signed(header: dict[str, object], payload: bytes = b"{}", key: object = EC) -> bytes:
    registry = jws.JWSRegistry(strict_check_header=False, algorithms=[str(header["alg"])])
    return json.dumps(
        jws.serialize_json({"protected": header}, payload, key, registry=registry)
    ).encode()


def header(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "alg": "ES256",
        "jwk": EC.as_dict(private=False),
        "nonce": "n",
        "url": URL,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def problem(body: bytes, url: str = URL) -> ProblemType:
    with pytest.raises(AcmeError) as caught:
        parse_request_jws(body, url)
    return caught.value.type


def test_valid_request_parses_and_verifies() -> None:
    request = parse_request_jws(signed(header()), URL)
    assert request.alg == "ES256" and request.nonce == "n" and request.payload == b"{}"
    verify_signature(request, KeyCache().get(request.jwk or {}))


def test_step1_body_must_be_a_flattened_jws() -> None:
    assert problem(b"not json") is ProblemType.MALFORMED
    assert problem(b"[]") is ProblemType.MALFORMED
    body = json.loads(signed(header()))
    body["header"] = {"kid": "x"}
    assert problem(json.dumps(body).encode()) is ProblemType.MALFORMED
    body = json.loads(signed(header()))
    body["payload"] = "***"
    assert problem(json.dumps(body).encode()) is ProblemType.MALFORMED


DEEP = b"[" * 100_000


def test_step1_deep_nesting_is_malformed_not_a_crash() -> None:
    """json.loads raised RecursionError (a 500) on 100000 "["; now malformed (400)."""
    assert problem(DEEP) is ProblemType.MALFORMED
    assert problem(b'{"protected": ' + DEEP) is ProblemType.MALFORMED
    raw = json.loads(signed(header()))
    raw["protected"] = b64url_encode(b'{"alg": "ES256", "x": ' + DEEP)
    assert problem(json.dumps(raw).encode()) is ProblemType.MALFORMED
    for payload in (DEEP, b"[" * 33 + b"]" * 33, b'{"a":' * 40 + b"1" + b"}" * 40):
        request = parse_request_jws(signed(header(), payload), URL)
        with pytest.raises(AcmeError) as caught:
            request.payload_json()
        assert caught.value.type is ProblemType.MALFORMED


def _flattened(protected: dict[str, object], payload: bytes = b"{}") -> bytes:
    """Unsigned: parse_request_jws checks the form, not yet the signature."""
    members = {
        "protected": b64url_encode(json.dumps(protected).encode()),
        "payload": b64url_encode(payload),
        "signature": "AA",
    }
    return json.dumps(members).encode()


@pytest.mark.parametrize(
    "changes",
    [
        {"jwk": None, "kid": "https://acme.example/acme/private/acct/a\ud800"},
        {"jwk": None, "kid": "\udfff"},
        {"x\ud800": 1},
        {"nonce": ["\ud800"]},
    ],
)
def test_step1_lone_surrogates_are_malformed(changes: dict[str, object]) -> None:
    """Found by the endpoint fuzz: "\\ud800" in a kid (or an EAB key id) reached SQLite,
    which cannot encode it: UnicodeEncodeError, a 500. JSON must be UTF-8 text (RFC 7493)."""
    with pytest.raises(AcmeError, match="lone surrogate") as caught:
        parse_request_jws(_flattened(header(**changes)), URL)
    assert caught.value.type is ProblemType.MALFORMED


def test_step1_lone_surrogates_in_payload_and_raw_bytes_are_malformed() -> None:
    request = parse_request_jws(_flattened(header(), b'{"contact": ["\\ud800"]}'), URL)
    with pytest.raises(AcmeError, match="lone surrogate"):
        request.payload_json()
    raw = _flattened(header()).replace(b'"AA"', b'"\xed\xa0\x80"')  # UTF-8 of U+D800
    with pytest.raises(AcmeError, match="lone surrogate"):
        parse_request_jws(raw, URL)
    # A surrogate pair is one ordinary character.
    fine = parse_request_jws(_flattened(header(), b'{"a": "\\ud83d\\ude00"}'), URL)
    assert fine.payload_json() == {"a": "\U0001f600"}


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-8-sig"])
@pytest.mark.parametrize(
    ("hazard", "refusal"),
    [("\ud800", "lone surrogate"), ("\x00", "NUL"), ("[" * 40 + "]" * 40, "nested")],
)
def test_step1_hazards_are_found_in_every_encoding_json_accepts(
    encoding: str, hazard: str, refusal: str
) -> None:
    """The payload is checked without walking it when its bytes show no hazard can be in
    it; json.loads also reads UTF-16 and UTF-32 (and a BOM), whose bytes look otherwise."""
    text = '{"a": %s}' % (hazard if hazard.startswith("[") else json.dumps(hazard))
    payload = text.encode(encoding, "surrogatepass")
    request = parse_request_jws(_flattened(header(), payload), URL)
    with pytest.raises(AcmeError, match=refusal):
        request.payload_json()


def test_step1_ordinary_nesting_is_fine() -> None:
    payload = json.dumps({"a": [[[[{"b": [1, 2, {"c": {}}]}]]]]}).encode()
    assert parse_request_jws(signed(header(), payload), URL).payload_json()["a"]


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
@pytest.mark.parametrize("suffix", ["=", "==", "\n", "==\n"])
def test_step1_members_are_unpadded_base64url(member: str, suffix: str) -> None:
    """RFC 8555 §6.1: values with trailing "=" MUST be rejected as improperly encoded."""
    body = json.loads(signed(header()))
    body[member] += suffix
    assert problem(json.dumps(body).encode()) is ProblemType.MALFORMED


@pytest.mark.parametrize("alg", ["none", "HS256", "RS1", None])
def test_step2_algorithm(alg: str | None) -> None:
    raw = {
        "protected": b64url_encode(json.dumps(header(alg=alg)).encode()),
        "payload": "",
        "signature": "",
    }
    if alg is None:
        raw["protected"] = b64url_encode(
            json.dumps({k: v for k, v in header().items() if k != "alg"}).encode()
        )
    with pytest.raises(AcmeError) as caught:
        parse_request_jws(json.dumps(raw).encode(), URL)
    assert caught.value.type is ProblemType.BAD_SIGNATURE_ALGORITHM
    assert "ES256" in caught.value.as_problem()["algorithms"]


def test_step3_exactly_one_of_jwk_and_kid() -> None:
    assert problem(signed(header(kid="https://acme.example/acct/1"))) is ProblemType.MALFORMED
    assert problem(signed(header(jwk=None))) is ProblemType.MALFORMED


def test_step4_url_must_match() -> None:
    assert problem(signed(header()), URL + "/other") is ProblemType.UNAUTHORIZED
    assert problem(signed(header(url=None))) is ProblemType.MALFORMED


def test_step5_nonce_required() -> None:
    assert problem(signed(header(nonce=None))) is ProblemType.BAD_NONCE


def test_step6_signature_by_another_key_fails() -> None:
    request = parse_request_jws(signed(header()), URL)
    other = import_account_key(ECKey.generate_key("P-256").as_dict(private=False))
    with pytest.raises(AcmeError) as caught:
        verify_signature(request, other)
    assert caught.value.type is ProblemType.MALFORMED


def test_step6_alg_must_fit_the_key_type() -> None:
    request = parse_request_jws(signed(header()), URL)
    rsa = import_account_key(RSAKey.generate_key(2048).as_dict(private=False))
    with pytest.raises(AcmeError) as caught:
        verify_signature(request, rsa)
    assert caught.value.type is ProblemType.BAD_SIGNATURE_ALGORITHM


def _ecdsa_jws(key: ECKey, alg: str, hash_name: str) -> bytes:
    """A JWS whose "alg" says ``alg`` but whose ECDSA signature uses ``hash_name`` on the
    key's own curve: the signature is valid, only the pairing is wrong."""
    protected = b64url_encode(json.dumps(header(alg=alg, jwk=key.as_dict(private=False))).encode())
    payload = b64url_encode(b"{}")
    private = key.private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    digest = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}
    der = private.sign(f"{protected}.{payload}".encode(), ec.ECDSA(digest[hash_name]))
    r, s = decode_dss_signature(der)
    size = (private.curve.key_size + 7) // 8
    signature = b64url_encode(r.to_bytes(size, "big") + s.to_bytes(size, "big"))
    return json.dumps({"protected": protected, "payload": payload, "signature": signature}).encode()


@pytest.mark.parametrize(
    ("alg", "hash_name", "curve"),
    [
        ("ES256", "SHA256", "P-384"),
        ("ES256", "SHA256", "P-521"),
        ("ES384", "SHA384", "P-256"),
        ("ES384", "SHA384", "P-521"),
        ("ES512", "SHA512", "P-256"),
        ("ES512", "SHA512", "P-384"),
    ],
)
def test_step6_ecdsa_alg_must_name_the_key_curve(alg: str, hash_name: str, curve: str) -> None:
    """RFC 7518 §3.4: ES256 is P-256 with SHA-256, ES384 P-384, ES512 P-521. joserfc checks
    the signature length against the key and the hash against the alg, not the pairing."""
    request = parse_request_jws(_ecdsa_jws(ECKey.generate_key(curve), alg, hash_name), URL)
    with pytest.raises(AcmeError) as caught:
        verify_signature(request, KeyCache().get(request.jwk or {}))
    assert caught.value.type is ProblemType.BAD_SIGNATURE_ALGORITHM
    assert caught.value.as_problem()["algorithms"] == [CURVE_ALG[curve]]


@pytest.mark.parametrize(
    ("curve", "alg"), [("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512")]
)
def test_step6_each_curve_with_its_own_alg(curve: str, alg: str) -> None:
    request = parse_request_jws(_ecdsa_jws(ECKey.generate_key(curve), alg, "SHA" + alg[2:]), URL)
    verify_signature(request, KeyCache().get(request.jwk or {}))


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_step6_eddsa_only_with_ed25519() -> None:
    ed = OKPKey.generate_key("Ed25519")
    request = parse_request_jws(signed(header(alg="ES256")), URL)
    with pytest.raises(AcmeError) as caught:
        verify_signature(request, import_account_key(ed.as_dict(private=False)))
    assert caught.value.type is ProblemType.BAD_SIGNATURE_ALGORITHM
    assert caught.value.as_problem()["algorithms"] == ["EdDSA"]
    ok = signed(header(alg="EdDSA", jwk=ed.as_dict(private=False)), key=ed)
    request = parse_request_jws(ok, URL)
    verify_signature(request, KeyCache().get(request.jwk or {}))


def test_weak_and_private_keys_are_bad_public_keys() -> None:
    with pytest.raises(AcmeError) as caught:
        import_account_key(EC.as_dict(private=True))
    assert caught.value.type is ProblemType.BAD_PUBLIC_KEY
    with pytest.raises(AcmeError) as caught:
        import_account_key({"kty": "oct", "k": "AAAA"})
    assert caught.value.type is ProblemType.BAD_PUBLIC_KEY


@pytest.mark.parametrize("crv", [[], {}, ["P-256"], {"P-256": 1}, None, 256])
def test_a_curve_of_any_json_type_is_a_bad_public_key(crv: object) -> None:
    """Found by the parser fuzz: an array or object "crv" raised TypeError (a 500)."""
    for kty in ("EC", "OKP"):
        with pytest.raises(AcmeError) as caught:
            KeyCache().get({"kty": kty, "crv": crv, "x": "AA", "y": "AA"})
        assert caught.value.type is ProblemType.BAD_PUBLIC_KEY


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 §3.1 example key and thumbprint.
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
