"""The request JWS (RFC 8555 §6.2-6.5), checked as the RFC's numbered steps.

``parse_request_jws`` does every check that needs no database: the form of the
flattened JWS, the algorithm, ``jwk`` xor ``kid``, the ``url``, the presence of a nonce
and a decodable payload. ``verify_signature`` then checks the signature with the key
the caller resolved (from ``jwk`` or from the account named by ``kid``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from acmefleet.errors import AcmeError, ProblemType, malformed, unauthorized
from acmefleet.jose.b64 import b64url_decode
from acmefleet.jose.keys import AccountKey

SIGNATURE_ALGORITHMS = ("RS256", "ES256", "ES384", "ES512", "EdDSA")
_FLATTENED_MEMBERS = {"protected", "payload", "signature"}
MAX_JSON_DEPTH = 32  # ACME nests 3 levels at most ({"identifiers": [{...}]}); room to spare

# The key each algorithm signs with: RFC 7518 §3.4 ties each ECDSA algorithm to one curve
# (ES256 is P-256, ES384 P-384, ES512 P-521), §3.3 RS256 to RSA; EdDSA (RFC 8037) is
# accepted with Ed25519 only. joserfc checks the signature length against the key and the
# hash against "alg", not the pairing: ES256 with a P-384 key verified.
_KEY_FOR_ALG: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # joserfc warns that EdDSA is superseded (RFC 9864)
    _ALGORITHMS = {
        alg: jws.JWSRegistry(algorithms=[alg]).get_alg(alg) for alg in SIGNATURE_ALGORITHMS
    }


@dataclass(frozen=True)
class RequestJws:
    """A flattened JWS whose form has been checked; the signature not yet."""

    flattened: dict[str, str]
    protected: dict[str, Any]
    alg: str
    url: str
    nonce: str | None
    kid: str | None
    jwk: dict[str, Any] | None
    payload: bytes

    @property
    def is_post_as_get(self) -> bool:
        return self.payload == b""

    def payload_json(self) -> dict[str, Any]:
        """The payload as a JSON object (malformed if it is not one)."""
        return decode_json_object(self.payload, "payload")


def load_json(data: bytes, what: str) -> Any:
    """JSON from the wire, nested at most ``MAX_JSON_DEPTH`` deep; malformed otherwise.

    ``json.loads`` recurses: 100000 "[" raised RecursionError (a 500), and a value just
    under the interpreter's limit would make later code (``json.dumps``, comparisons)
    recurse too. ACME bodies nest a few levels; anything deeper is refused. So are lone
    surrogates, which no UTF-8 encoder (SQLite's among them) accepts, and U+0000, which no
    PostgreSQL text value can hold.
    """
    try:
        value = json.loads(data)
    except RecursionError as exc:
        raise malformed(f"the {what} is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise malformed(f"the {what} is not valid JSON") from exc
    if _plainly_safe(data):
        return value
    if _nested_deeper_than(value, MAX_JSON_DEPTH):
        raise malformed(f"the {what} is nested more than {MAX_JSON_DEPTH} levels deep")
    if _holds_lone_surrogate(value):
        raise malformed(f"the {what} holds a lone surrogate (\\uD800-\\uDFFF), not UTF-8 text")
    if _holds_nul(value):
        raise malformed(f"the {what} holds a NUL character (\\u0000)")
    return value


def _plainly_safe(data: bytes) -> bool:
    """Whether the text alone shows that the checks below would pass (most ACME bodies: a
    few levels of objects holding ASCII and base64url), so its values need not be walked.

    ASCII bytes without NUL are UTF-8, not UTF-16 or UTF-32 (which ``json.loads`` also
    reads: their ASCII characters come with NUL bytes); there, a lone surrogate or U+0000
    can only be written as a ``\\u`` escape, and nesting deeper than the limit needs more
    opening brackets than the limit."""
    return (
        data.isascii()
        and b"\x00" not in data
        and b"\\u" not in data
        and data.count(b"{") + data.count(b"[") <= MAX_JSON_DEPTH
    )


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep (iteratively: no recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _strings(value: Any) -> Iterator[str]:
    """Every string of a JSON value, object member names included (iteratively)."""
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether a string (or object member name) holds a code point U+D800-U+DFFF.

    ``json.loads`` turns ``"\\ud800"`` (and the bytes ED A0 80) into a str that no UTF-8
    encoder accepts: a ``kid`` or EAB key id like that made SQLite raise UnicodeEncodeError
    (a 500). RFC 7493 (I-JSON) §2.1 forbids them; no ACME value needs one.
    """
    return any(
        not item.isascii() and any("\ud800" <= c <= "\udfff" for c in item)
        for item in _strings(value)
    )


def _holds_nul(value: Any) -> bool:
    """Whether a string (or object member name) holds U+0000: PostgreSQL refuses it in
    text (a 500 on a lookup by ``kid``, before any signature is checked)."""
    return any("\x00" in item for item in _strings(value))


def decode_json_object(data: bytes, what: str) -> dict[str, Any]:
    value = load_json(data, what)
    if not isinstance(value, dict):
        raise malformed(f"the {what} must be a JSON object")
    return value


def bad_algorithm(alg: object, allowed: tuple[str, ...]) -> AcmeError:
    return AcmeError(
        ProblemType.BAD_SIGNATURE_ALGORITHM,
        f"algorithm {alg!r} is not accepted here",
        extra={"algorithms": list(allowed)},
    )


def parse_flattened(body: Any, what: str) -> tuple[dict[str, str], dict[str, Any], bytes]:
    """Step 1: a flattened JWS with exactly protected/payload/signature, all base64url."""
    if not isinstance(body, dict) or set(body) != _FLATTENED_MEMBERS:
        raise malformed(f"the {what} must be a flattened JWS with protected, payload, signature")
    if not all(isinstance(body[m], str) for m in _FLATTENED_MEMBERS):
        raise malformed(f"the {what} members must be strings")
    try:
        header_bytes = b64url_decode(body["protected"])
        payload = b64url_decode(body["payload"])
        b64url_decode(body["signature"])
    except ValueError as exc:
        raise malformed(f"the {what} contains invalid base64url") from exc
    protected = decode_json_object(header_bytes, f"{what} protected header")
    return body, protected, payload


def parse_request_jws(body: bytes, request_url: str) -> RequestJws:
    """RFC 8555 §6.2 steps that need no database, in the RFC's order."""
    # 1. The body is a flattened JWS object.
    outer = load_json(body, "request body")
    flattened, protected, payload = parse_flattened(outer, "request")
    # 2. "alg" is an asymmetric algorithm we accept (never "none", never a MAC).
    alg = protected.get("alg")
    if alg not in SIGNATURE_ALGORITHMS:
        raise bad_algorithm(alg, SIGNATURE_ALGORITHMS)
    # 3. Exactly one of "jwk" and "kid".
    jwk, kid = protected.get("jwk"), protected.get("kid")
    if (jwk is None) == (kid is None):
        raise malformed("the protected header must contain exactly one of 'jwk' and 'kid'")
    if kid is not None and not isinstance(kid, str):
        raise malformed("'kid' must be a string")
    if jwk is not None and not isinstance(jwk, dict):
        raise malformed("'jwk' must be a JSON object")
    # 4. "url" equals the URL the request was sent to (§6.4).
    url = protected.get("url")
    if not isinstance(url, str):
        raise malformed("the protected header must contain 'url'")
    if url != request_url:
        raise unauthorized(f"the JWS 'url' {url!r} does not match the request URL")
    # 5. A nonce is present (checked against the store later, §6.5).
    nonce = protected.get("nonce")
    if nonce is None:
        raise AcmeError(ProblemType.BAD_NONCE, "the protected header must contain 'nonce'")
    if not isinstance(nonce, str):
        raise AcmeError(ProblemType.BAD_NONCE, "'nonce' must be a string")
    return RequestJws(flattened, protected, alg, url, nonce, kid, jwk, payload)


def verify_signature(request: RequestJws, key: AccountKey) -> None:
    """Step 6: the signature verifies with the resolved key and the declared algorithm.

    The form was checked by ``parse_request_jws``; this asks joserfc's algorithm object
    for the cryptographic check alone, so the JWS is not parsed a second time.
    """
    verify_flattened(request.flattened, request.alg, key)


def verify_flattened(flattened: dict[str, str], alg: str, key: AccountKey) -> None:
    """The signature check of any flattened JWS whose form was checked (outer or inner)."""
    algorithm = _ALGORITHMS.get(alg)
    if algorithm is None:
        raise bad_algorithm(alg, SIGNATURE_ALGORITHMS)
    if not _alg_fits_key(alg, key.jwk):
        raise bad_algorithm(
            alg, tuple(a for a in SIGNATURE_ALGORITHMS if _alg_fits_key(a, key.jwk))
        )
    signing_input = f"{flattened['protected']}.{flattened['payload']}".encode()
    try:
        valid = algorithm.verify(signing_input, b64url_decode(flattened["signature"]), key.key)
    except (JoseError, ValueError, TypeError) as exc:
        raise _bad_signature(alg) from exc
    if not valid:
        raise _bad_signature(alg)


def _alg_fits_key(alg: str, jwk: dict[str, str]) -> bool:
    kty, crv = _KEY_FOR_ALG[alg]
    return jwk.get("kty") == kty and (crv is None or jwk.get("crv") == crv)


def _bad_signature(alg: str) -> AcmeError:
    return malformed(f"the JWS signature does not verify with this key and {alg}")
