"""Inner JWS objects (RFC 8555 §7.3.4 EAB, §7.3.5 keyChange): the rules they share.

Both are a flattened JWS carried in the payload of the outer request, with an allowed
algorithm, no nonce, and the outer request's ``url``. Those checks are written once,
here, so the two kinds cannot drift; what differs (algorithms, which key header, the
wording of errors) is given by the caller as ``InnerJwsRules``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acmefleet.errors import malformed, unauthorized
from acmefleet.jose.b64 import b64url_decode
from acmefleet.jose.jws import bad_algorithm, parse_flattened


@dataclass(frozen=True)
class InnerJwsRules:
    """What one kind of inner JWS allows, and how its errors name it."""

    what: str  # names the JWS in form errors: "the {what} must be a flattened JWS ..."
    algorithms: tuple[str, ...]
    check_key_header: Callable[[dict[str, Any]], None]  # "kid" for EAB, "jwk" for keyChange
    nonce_present: str  # malformed detail when the header carries "nonce"
    url_mismatch: str  # unauthorized detail when "url" is not the outer JWS's url


@dataclass(frozen=True)
class InnerJws:
    """An inner JWS whose form and header have been checked; its signature not yet."""

    flattened: dict[str, str]
    protected: dict[str, Any]
    alg: str
    payload: bytes

    @property
    def signing_input(self) -> bytes:
        return f"{self.flattened['protected']}.{self.flattened['payload']}".encode("ascii")

    @property
    def signature(self) -> bytes:
        return b64url_decode(self.flattened["signature"])


def parse_inner_jws(body: Any, outer_url: str, rules: InnerJwsRules) -> InnerJws:
    """The shared checks, in this order (so the first fault found is always the same)."""
    # 1. A flattened JWS with a JSON protected header.
    flattened, protected, payload = parse_flattened(body, rules.what)
    # 2. "alg" is one this kind allows.
    alg = protected.get("alg")
    if alg not in rules.algorithms:
        raise bad_algorithm(alg, rules.algorithms)
    # 3. The key header this kind requires.
    rules.check_key_header(protected)
    # 4. No "nonce": only the outer JWS is replay-protected.
    if "nonce" in protected:
        raise malformed(rules.nonce_present)
    # 5. "url" equals the outer JWS's url, so the inner JWS cannot be replayed elsewhere.
    if protected.get("url") != outer_url:
        raise unauthorized(rules.url_mismatch)
    return InnerJws(flattened, protected, alg, payload)
