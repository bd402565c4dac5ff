"""keyChange (RFC 8555 §7.3.5): the inner JWS checked as the RFC's steps.

Everything that needs only the request is checked here: the inner JWS's form and
header (shared with EAB through ``jose.inner``), that it is signed by the new key it
carries, and that its payload names the signing account. What needs the account's
stored state (``oldKey`` is its current key, no other account holds the new key) is
``policy.accounts.change_key``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acmefleet.errors import malformed, unauthorized
from acmefleet.jose.inner import InnerJwsRules, parse_inner_jws
from acmefleet.jose.jws import SIGNATURE_ALGORITHMS, decode_json_object, verify_flattened
from acmefleet.jose.keys import AccountKey, KeyCache


@dataclass(frozen=True)
class KeyChange:
    """A keyChange whose inner JWS verified with ``new_key``; ``old_key`` as sent."""

    new_key: AccountKey
    old_key: Any  # the payload's "oldKey", compared with the account's key by policy


def _require_jwk(protected: dict[str, Any]) -> None:
    """Step 3: the new key travels as "jwk"; a "kid" would name an account instead."""
    if "jwk" not in protected or "kid" in protected:
        raise malformed("keyChange: the inner JWS must carry 'jwk' (the new key) and no 'kid'")


KEY_CHANGE_RULES = InnerJwsRules(
    what="keyChange inner JWS",
    algorithms=SIGNATURE_ALGORITHMS,
    check_key_header=_require_jwk,
    nonce_present="keyChange: the inner JWS must not carry 'nonce'",
    url_mismatch="keyChange: the inner 'url' must equal the outer 'url'",
)


def parse_key_change(body: Any, *, outer_url: str, account_url: str, keys: KeyCache) -> KeyChange:
    """Steps 1-8 on the outer payload ``body``; ``account_url`` is the signer's account."""
    # 1. A flattened JWS; 2. an asymmetric "alg"; 3. "jwk" and no "kid"; 4. no "nonce";
    # 5. "url" equals the outer JWS's url.
    inner = parse_inner_jws(body, outer_url, KEY_CHANGE_RULES)
    # 6. "jwk" is a key this server accepts (badPublicKey otherwise).
    new_key = keys.get(inner.protected["jwk"])
    # 7. The inner JWS is signed by that key: the client holds the new private key.
    verify_flattened(inner.flattened, inner.alg, new_key)
    # 8. The payload is a JSON object naming the account that signed the outer JWS.
    payload = decode_json_object(inner.payload, "payload")
    if payload.get("account") != account_url:
        raise unauthorized("keyChange: 'account' does not name the signing account")
    return KeyChange(new_key, payload.get("oldKey"))
