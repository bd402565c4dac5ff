"""The JWS an ACME client sends (RFC 8555 §6.2, RFC 7515 flattened JSON), and the EAB
binding of a new account (§7.3.4), signed with the upstream account's key.

ES256 on P-256 (RFC 7518 §3.4: the signature is r || s, 32 bytes each, not DER), RS256 for
an RSA key an operator brought from elsewhere. The HMAC key of the EAB is only ever an
argument here: nothing in this module keeps or prints it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from acmefleet.jose.b64 import b64url_decode_padded, b64url_encode
from acmefleet.jose.keys import thumbprint

AccountPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _int_b64(number: int, size: int | None = None) -> str:
    length = size if size is not None else max(1, (number.bit_length() + 7) // 8)
    return b64url_encode(number.to_bytes(length, "big"))


@dataclass(frozen=True)
class AccountSigner:
    """An account's private key with its public JWK, RFC 7638 thumbprint and JWS algorithm."""

    key: AccountPrivateKey

    @property
    def jwk(self) -> dict[str, str]:
        public = self.key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            numbers = public.public_numbers()
            return {
                "kty": "EC",
                "crv": "P-256",
                "x": _int_b64(numbers.x, 32),
                "y": _int_b64(numbers.y, 32),
            }
        rsa_numbers = public.public_numbers()
        return {"kty": "RSA", "n": _int_b64(rsa_numbers.n), "e": _int_b64(rsa_numbers.e)}

    @property
    def algorithm(self) -> str:
        return "ES256" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "RS256"

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.jwk)

    def key_authorization(self, token: str) -> str:
        """RFC 8555 §8.1: the challenge's token and this account key's thumbprint."""
        return f"{token}.{self.thumbprint}"

    def _signature(self, signing_input: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

    def sign(
        self, url: str, nonce: str, payload: Any | None, *, kid: str | None = None
    ) -> dict[str, str]:
        """A flattened JWS: ``payload`` None is a POST-as-GET (empty payload, §6.3); with no
        ``kid`` the protected header carries the JWK (newAccount, revocation by key)."""
        protected: dict[str, Any] = {"alg": self.algorithm, "nonce": nonce, "url": url}
        if kid is None:
            protected["jwk"] = self.jwk
        else:
            protected["kid"] = kid
        encoded_protected = b64url_encode(_compact_json(protected))
        encoded_payload = "" if payload is None else b64url_encode(_compact_json(payload))
        signing_input = f"{encoded_protected}.{encoded_payload}".encode("ascii")
        return {
            "protected": encoded_protected,
            "payload": encoded_payload,
            "signature": b64url_encode(self._signature(signing_input)),
        }

    def eab_binding(self, url: str, kid: str, hmac_key: str) -> dict[str, str]:
        """RFC 8555 §7.3.4: the account's JWK MACed with the CA's HMAC key (HS256).

        ``hmac_key`` is base64url as CAs hand it out (padding tolerated: ZeroSSL's has none,
        some consoles show it with ``=``)."""
        try:
            secret = b64url_decode_padded(hmac_key.strip())
        except ValueError as exc:
            raise ValueError("the EAB HMAC key is not base64url") from exc
        protected = b64url_encode(_compact_json({"alg": "HS256", "kid": kid, "url": url}))
        payload = b64url_encode(_compact_json(self.jwk))
        signing_input = f"{protected}.{payload}".encode("ascii")
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        return {"protected": protected, "payload": payload, "signature": b64url_encode(mac)}
