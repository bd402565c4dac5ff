"""Property tests of the JOSE parsers: base64url, JSON, the request JWS, EAB, keyChange, JWKs.

Each parser gets hostile input (structured JSON of odd types and near-valid JWS objects,
mixed with random bytes and text) and must either return a value that satisfies its
invariants or raise ``AcmeError`` (``ValueError`` for ``b64url_decode``): never a
TypeError, KeyError, RecursionError, UnicodeError or anything else, which the ACME front
end would answer with a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from acmefleet.errors import AcmeError
from acmefleet.jose.b64 import b64url_decode, b64url_decode_padded, b64url_encode
from acmefleet.jose.eab import EAB_ALGORITHMS, parse_eab, verify_eab
from acmefleet.jose.jws import (
    MAX_JSON_DEPTH,
    SIGNATURE_ALGORITHMS,
    load_json,
    parse_request_jws,
    verify_signature,
)
from acmefleet.jose.keychange import parse_key_change
from acmefleet.jose.keys import ALLOWED_CURVES, AccountKey, KeyCache, thumbprint
from tests.support.fuzz import (
    assert_problem,
    b64,
    b64ish,
    fuzz_settings,
    half,
    json_bytes,
    json_value,
    mutated,
    to_json,
)

URL = "https://acme.example/acme/private/new-order"
EAB_URL = "https://acme.example/acme/private/new-account"
KEY_CHANGE_URL = "https://acme.example/acme/private/key-change"
ACCOUNT_URL = "https://acme.example/acme/private/acct/a1"
# Real 1024-bit RSA keys come by: joserfc warns when importing them (they are refused).
pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
EAB_KEY = b"k" * 32

PRIVATE_KEYS: list[ECKey | RSAKey | OKPKey] = [
    ECKey.generate_key("P-256"),
    ECKey.generate_key("P-384"),
    ECKey.generate_key("P-521"),
    RSAKey.generate_key(2048),
    OKPKey.generate_key("Ed25519"),
]
NATURAL_ALG = ["ES256", "ES384", "ES512", "RS256", "EdDSA"]
REAL_JWKS: list[dict[str, Any]] = [
    {k: v for k, v in key.as_dict(private=False).items() if k in ("kty", "crv", "x", "y", "n", "e")}
    for key in PRIVATE_KEYS
]
CACHE = KeyCache(size=64)
ACCOUNT_KEYS: list[AccountKey] = [CACHE.get(jwk) for jwk in REAL_JWKS]


REFUSED: Any = object()


def _typed(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(...)``, or REFUSED when it refused with a well-formed AcmeError."""
    name = getattr(call, "__name__", "call")
    try:
        value = call(*args, **kwargs)
    except AcmeError as error:
        assert_problem(error)
        event(f"{name} refused: {error.type.value}")
        return REFUSED
    event(f"{name} accepted")
    return value


# -- strategies


def _with(base: dict[str, Any], member: str, value: Any) -> dict[str, Any]:
    return {**base, member: value}


# JWKs: real public keys, real ones with one member replaced or dropped or private
# material added, random objects, anything at all.
jwks = st.one_of(
    st.sampled_from(REAL_JWKS),
    st.builds(
        _with,
        st.sampled_from(REAL_JWKS),
        st.sampled_from(["kty", "crv", "x", "y", "n", "e", "d", "p", "kid", "alg"]),
        st.one_of(
            json_value,
            b64ish,
            st.sampled_from(["EC", "RSA", "OKP", "oct", "P-256", "P-192", "Ed448", "X25519"]),
        ),
    ),
    st.sampled_from(REAL_JWKS).map(lambda jwk: dict(list(jwk.items())[1:])),
    st.fixed_dictionaries(
        {"kty": st.sampled_from(["EC", "RSA", "OKP"])},
        optional={
            "crv": st.one_of(st.sampled_from(sorted(ALLOWED_CURVES)), json_value),
            "x": b64ish,
            "y": b64ish,
            "n": b64ish,
            "e": st.sampled_from(["AQAB", "Aw", "AA", "AQAA", ""]),
        },
    ),
    json_value,
)

algs = st.one_of(
    st.sampled_from(
        [*SIGNATURE_ALGORITHMS, *EAB_ALGORITHMS, "none", "None", "RS384", "PS256", "es256", ""]
    ),
    json_value,
)
URLS = [URL, EAB_URL, KEY_CHANGE_URL, ACCOUNT_URL, URL + "/", URL + "\n", URL.upper()]
HEADER_MEMBERS = ["alg", "jwk", "kid", "url", "nonce", "crit", "b64", "typ"]
header_values = st.one_of(algs, jwks, st.sampled_from(URLS), b64ish, json_value)
nonces = st.binary(min_size=36, max_size=36).map(b64)


def request_headers(index: st.SearchStrategy[int]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid request header for key ``index`` (jwk or kid), then mutated."""
    base = st.builds(
        lambda i, nonce, use_kid: {
            "alg": NATURAL_ALG[i],
            **({"kid": ACCOUNT_URL} if use_kid else {"jwk": REAL_JWKS[i]}),
            "url": URL,
            "nonce": nonce,
        },
        index,
        nonces,
        st.booleans(),
    )
    return mutated(base, HEADER_MEMBERS, header_values)


eab_headers = mutated(
    st.builds(
        lambda alg: {"alg": alg, "kid": "kid-1", "url": EAB_URL},
        st.sampled_from(list(EAB_ALGORITHMS)),
    ),
    HEADER_MEMBERS,
    header_values,
)


signatures = st.one_of(st.binary(max_size=132).map(b64), b64ish)


def _flattened(protected: Any, payload: bytes, signature: str) -> dict[str, str]:
    return {"protected": b64(to_json(protected)), "payload": b64(payload), "signature": signature}


payload_objects = mutated(
    st.sampled_from([{}, {"identifiers": [{"type": "dns", "value": "a.example"}]}]),
    ["identifiers", "contact", "status", "csr"],
    json_value,
)
payloads = half(
    payload_objects.map(to_json), st.one_of(st.just(b""), json_bytes, jwks.map(to_json))
)


def broken_shapes(good: st.SearchStrategy[dict[str, str]]) -> st.SearchStrategy[Any]:
    """Flattened JWS objects, half well-formed, plus broken shapes and random JSON."""
    return half(
        good,
        st.one_of(
            mutated(
                good, ["protected", "payload", "signature", "header"], st.one_of(b64ish, json_value)
            ),
            json_value,
        ),
    )


def _signed(
    protected: Any, payload: bytes, index: int, signature_key: bytes | None = None
) -> dict[str, str]:
    """Signed for real (the key's own algorithm, or HMAC with ``signature_key``)."""
    header, body = b64(to_json(protected)), b64(payload)
    signing_input = f"{header}.{body}".encode()
    if signature_key is not None:
        alg = protected.get("alg") if isinstance(protected, dict) else None
        digest = EAB_ALGORITHMS.get(alg, hashlib.sha256) if isinstance(alg, str) else hashlib.sha256
        signature = hmac.new(signature_key, signing_input, digest).digest()
    else:
        algorithm = jws.JWSRegistry.algorithms[NATURAL_ALG[index]]
        signature = algorithm.sign(signing_input, PRIVATE_KEYS[index])
    return {"protected": header, "payload": body, "signature": b64(signature)}


# -- base64url


@given(st.one_of(b64ish, st.binary(max_size=48).map(b64), json_value))
@fuzz_settings(500)
def test_b64url_decode_is_canonical_or_value_error(text: Any) -> None:
    try:
        data = b64url_decode(text)
    except ValueError:
        return
    assert isinstance(text, str)
    assert re.fullmatch(r"[A-Za-z0-9_-]*", text)
    assert b64url_encode(data) == text  # exactly one spelling per value


@given(st.binary(max_size=256))
@fuzz_settings(300)
def test_b64url_round_trips(data: bytes) -> None:
    text = b64url_encode(data)
    assert b64url_decode(text) == data
    assert b64url_decode_padded(text + "=" * (-len(text) % 4)) == data


# -- JSON


@given(json_bytes)
@fuzz_settings(400)
def test_load_json_returns_shallow_json_or_malformed(data: bytes) -> None:
    value = _typed(load_json, data, "request body")
    if value is REFUSED:
        return
    depth, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            depth = max(depth, level)
            pending.extend(
                (c, level + 1) for c in (item.values() if isinstance(item, dict) else item)
            )
    assert depth <= MAX_JSON_DEPTH
    # What later code may do with it: no recursion out, and every string encodes to UTF-8
    # (a lone surrogate made SQLite raise UnicodeEncodeError).
    json.dumps(value, ensure_ascii=False).encode("utf-8")


# -- the request JWS


KEY_INDEX = st.integers(0, len(PRIVATE_KEYS) - 1)
request_bodies = st.one_of(
    broken_shapes(st.builds(_flattened, request_headers(KEY_INDEX), payloads, signatures)).map(
        to_json
    ),
    json_bytes,
)


@given(request_bodies)
@fuzz_settings(500)
def test_parse_request_jws(body: bytes) -> None:
    request = _typed(parse_request_jws, body, URL)
    if request is REFUSED:
        return
    assert request.alg in SIGNATURE_ALGORITHMS
    assert request.url == URL
    assert isinstance(request.nonce, str)
    assert (request.jwk is None) != (request.kid is None)
    assert request.kid is None or isinstance(request.kid, str)
    assert request.jwk is None or isinstance(request.jwk, dict)
    assert request.payload == b64url_decode(request.flattened["payload"])
    payload = _typed(request.payload_json)
    assert payload is REFUSED or isinstance(payload, dict)
    # The signature is random: with any key, it is refused, never an exception.
    for key in ACCOUNT_KEYS:
        with pytest.raises(AcmeError) as refused:
            verify_signature(request, key)
        assert_problem(refused.value)


signed_requests = KEY_INDEX.flatmap(
    lambda i: st.tuples(st.just(i), request_headers(st.just(i)), payloads)
)


@given(signed_requests)
@fuzz_settings(300)
def test_really_signed_request_jws(signed: tuple[int, dict[str, Any], bytes]) -> None:
    """Signed with a real key: the signature step runs on hostile headers too."""
    index, protected, payload = signed
    request = _typed(parse_request_jws, to_json(_signed(protected, payload, index)), URL)
    if request is REFUSED:
        return
    if _typed(verify_signature, request, ACCOUNT_KEYS[index]) is REFUSED:
        return
    assert request.alg == NATURAL_ALG[index], "a signature verified under another algorithm"
    _typed(request.payload_json)


# -- JWK import


@given(jwks)
@fuzz_settings(500)
def test_key_cache_imports_or_refuses(jwk: Any) -> None:
    key = _typed(KeyCache().get, jwk)
    if key is REFUSED:
        return
    assert isinstance(jwk, dict)
    assert key.thumbprint == thumbprint(jwk)
    assert key.jwk == {m: jwk[m] for m in key.jwk}
    assert "d" not in key.jwk and "p" not in key.jwk
    assert jwk["kty"] in ("EC", "RSA", "OKP")
    if jwk["kty"] != "RSA":
        assert jwk["crv"] in ALLOWED_CURVES
    assert CACHE.get(jwk).thumbprint == key.thumbprint  # the cache gives the same key back


# -- EAB


eab_payloads = half(st.sampled_from(REAL_JWKS).map(to_json), payloads)
eab_bindings = st.one_of(
    st.none(),
    broken_shapes(st.builds(_flattened, eab_headers, eab_payloads, signatures)),
    broken_shapes(
        st.builds(
            lambda header, payload: _signed(header, payload, 0, EAB_KEY), eab_headers, eab_payloads
        )
    ),
)


@given(eab_bindings, st.sampled_from(REAL_JWKS))
@fuzz_settings(500)
def test_parse_eab_and_verify(binding: Any, account_jwk: dict[str, Any]) -> None:
    request = _typed(parse_eab, binding, EAB_URL)
    if request is REFUSED:
        return
    protected = json.loads(b64url_decode(binding["protected"]))
    assert request.alg in EAB_ALGORITHMS and request.alg == protected["alg"]
    assert isinstance(request.kid, str) and request.kid
    assert protected["url"] == EAB_URL and "nonce" not in protected
    assert isinstance(request.payload_jwk, dict)
    if _typed(verify_eab, request, b64(EAB_KEY), thumbprint(account_jwk)) is REFUSED:
        return
    assert thumbprint(request.payload_jwk) == thumbprint(account_jwk)
    assert binding["signature"] == b64(
        hmac.new(EAB_KEY, request.signing_input, EAB_ALGORITHMS[request.alg]).digest()
    )


# -- keyChange


def key_change_payload(index: int) -> st.SearchStrategy[bytes]:
    valid = {"account": ACCOUNT_URL, "oldKey": REAL_JWKS[(index + 1) % len(REAL_JWKS)]}
    return st.one_of(
        mutated(
            st.just(valid),
            ["account", "oldKey"],
            st.one_of(jwks, st.sampled_from(URLS), json_value),
        ).map(to_json),
        payloads,
    )


def key_change_header(index: int) -> st.SearchStrategy[dict[str, Any]]:
    base = {"alg": NATURAL_ALG[index], "jwk": REAL_JWKS[index], "url": KEY_CHANGE_URL}
    return mutated(st.just(base), HEADER_MEMBERS, header_values)


def key_change_bodies(i: int) -> st.SearchStrategy[Any]:
    signed = st.builds(
        lambda header, payload: _signed(header, payload, i),
        key_change_header(i),
        key_change_payload(i),
    )
    unsigned = st.builds(_flattened, key_change_header(i), key_change_payload(i), signatures)
    return half(signed, st.one_of(broken_shapes(signed), broken_shapes(unsigned)))


key_changes = KEY_INDEX.flatmap(key_change_bodies)


@given(key_changes)
@fuzz_settings(400)
def test_parse_key_change(body: Any) -> None:
    change = _typed(
        parse_key_change, body, outer_url=KEY_CHANGE_URL, account_url=ACCOUNT_URL, keys=CACHE
    )
    if change is REFUSED:
        return
    protected = json.loads(b64url_decode(body["protected"]))
    payload = json.loads(b64url_decode(body["payload"]))
    assert payload["account"] == ACCOUNT_URL
    assert protected["url"] == KEY_CHANGE_URL
    assert "nonce" not in protected and "kid" not in protected
    assert change.new_key.thumbprint == thumbprint(protected["jwk"])
    index = [k.thumbprint for k in ACCOUNT_KEYS].index(change.new_key.thumbprint)
    assert protected["alg"] == NATURAL_ALG[index]
