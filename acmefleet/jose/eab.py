"""External Account Binding (RFC 8555 §7.3.4), checked as the RFC's numbered steps.

This module checks the inner JWS against a credential looked up by the caller; it
never writes. Binding (create the account, erase the HMAC) is one transaction in
``policy.accounts``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from acmefleet.errors import AcmeError, ProblemType, malformed, unauthorized
from acmefleet.jose.b64 import b64url_decode
from acmefleet.jose.jws import bad_algorithm, parse_flattened
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


def parse_eab(binding: Any, outer_url: str) -> EabRequest:
    """Steps 1-4: a flattened JWS with alg HS*, a kid, the outer url, and no nonce."""
    if binding is None:
        raise AcmeError(
            ProblemType.EXTERNAL_ACCOUNT_REQUIRED,
            "this server requires an externalAccountBinding in newAccount",
        )
    # 1. A flattened JWS.
    flattened, protected, payload = parse_flattened(binding, "externalAccountBinding")
    # 2. "alg" is a MAC algorithm.
    alg = protected.get("alg")
    if alg not in EAB_ALGORITHMS:
        raise bad_algorithm(alg, tuple(EAB_ALGORITHMS))
    # 3. "kid" names the credential; no "nonce" (§7.3.4).
    kid = protected.get("kid")
    if not isinstance(kid, str) or not kid:
        raise malformed("externalAccountBinding: the protected header must contain 'kid'")
    if "nonce" in protected:
        raise malformed("externalAccountBinding: the protected header must not contain 'nonce'")
    # 4. "url" equals the outer JWS's url.
    if protected.get("url") != outer_url:
        raise unauthorized("externalAccountBinding: 'url' must equal the outer JWS 'url'")
    from acmefleet.jose.jws import decode_json_object

    payload_jwk = decode_json_object(payload, "externalAccountBinding payload")
    signing_input = f"{flattened['protected']}.{flattened['payload']}".encode("ascii")
    return EabRequest(kid, alg, signing_input, b64url_decode(flattened["signature"]), payload_jwk)


def verify_eab(request: EabRequest, hmac_key_b64url: str, account_thumbprint: str) -> None:
    """Steps 5-6: the MAC verifies with the credential's key; the payload is the account key."""
    # 5. The MAC, compared in constant time.
    key = b64url_decode(hmac_key_b64url)
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
