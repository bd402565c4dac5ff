"""External Account Binding (RFC 8555 §7.3.4), checked as the RFC's numbered steps.

This module checks the inner JWS against a credential looked up by the caller; it
never writes. Binding (create the account, erase the HMAC) is one transaction in
``policy.accounts``. The checks every inner JWS shares are ``jose.inner``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from acmefleet.errors import AcmeError, ProblemType, malformed, unauthorized
from acmefleet.jose.b64 import b64url_decode_padded
from acmefleet.jose.inner import InnerJwsRules, parse_inner_jws
from acmefleet.jose.jws import decode_json_object
from acmefleet.jose.keys import thumbprint

EAB_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


@dataclass(frozen=True)
class EabRequest:
    """The inner JWS, its form checked; the MAC not yet."""

    kid: str
    alg: str
    signing_input: bytes
    signature: bytes
    payload_jwk: dict[str, Any]


MAX_KID_LENGTH = 128


def _require_kid(protected: dict[str, Any]) -> None:
    """Step 3: "kid" names the credential."""
    kid = protected.get("kid")
    if not isinstance(kid, str) or not kid:
        raise malformed("externalAccountBinding: the protected header must contain 'kid'")
    if len(kid) > MAX_KID_LENGTH:
        # Minted ones are 22 characters; a long one would overflow the failure counter's key.
        raise malformed(f"externalAccountBinding: 'kid' is longer than {MAX_KID_LENGTH}")


EAB_RULES = InnerJwsRules(
    what="externalAccountBinding",
    algorithms=tuple(EAB_ALGORITHMS),
    check_key_header=_require_kid,
    nonce_present="externalAccountBinding: the protected header must not contain 'nonce'",
    url_mismatch="externalAccountBinding: 'url' must equal the outer JWS 'url'",
)


def parse_eab(binding: Any, outer_url: str) -> EabRequest:
    """Steps 1-4: a flattened JWS with alg HS*, a kid, the outer url, and no nonce."""
    if binding is None:
        raise AcmeError(
            ProblemType.EXTERNAL_ACCOUNT_REQUIRED,
            "this server requires an externalAccountBinding in newAccount",
        )
    # 1. A flattened JWS; 2. "alg" is a MAC algorithm; 3. a "kid" and no "nonce";
    # 4. "url" equals the outer JWS's url.
    inner = parse_inner_jws(binding, outer_url, EAB_RULES)
    payload_jwk = decode_json_object(inner.payload, "externalAccountBinding payload")
    kid: str = inner.protected["kid"]
    return EabRequest(kid, inner.alg, inner.signing_input, inner.signature, payload_jwk)


def verify_eab(request: EabRequest, hmac_key_b64url: str, account_thumbprint: str) -> None:
    """Steps 5-6: the MAC verifies with the credential's key; the payload is the account key."""
    # 5. The MAC, compared in constant time. The key is the one this server stored; padding
    # on it is tolerated (the JWS members were decoded strictly by parse_inner_jws).
    key = b64url_decode_padded(hmac_key_b64url)
    digest = EAB_ALGORITHMS[request.alg]
    expected = hmac.new(key, request.signing_input, digest).digest()
    if not hmac.compare_digest(expected, request.signature):
        raise unauthorized("externalAccountBinding: the MAC does not verify with this credential")
    # 6. The payload is the account key, compared by RFC 7638 thumbprint (not by bytes).
    try:
        payload_thumbprint = thumbprint(request.payload_jwk)
    except AcmeError as exc:
        raise malformed("externalAccountBinding: the payload must be the account's JWK") from exc
    if not hmac.compare_digest(payload_thumbprint, account_thumbprint):
        raise unauthorized("externalAccountBinding: the payload key is not the account key")
