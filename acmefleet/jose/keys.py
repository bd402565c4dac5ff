"""Account public keys: import from JWK, RFC 7638 thumbprints, policy, and a cache."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.jose.b64 import b64url_encode

PublicJwk = ECKey | RSAKey | OKPKey
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
ALLOWED_CURVES = {"P-256", "P-384", "P-521", "Ed25519"}


@dataclass(frozen=True)
class AccountKey:
    """A verified-usable public key with what the server needs of it."""

    jwk: dict[str, str]  # the public members only, as stored
    key: PublicJwk
    thumbprint: str  # RFC 7638, base64url SHA-256
    spki_der: bytes


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        raise AcmeError(ProblemType.BAD_PUBLIC_KEY, "the JWK lacks required public members")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def _check_strength(raw: Any) -> None:
    if isinstance(raw, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= raw.key_size <= MAX_RSA_BITS:
            raise AcmeError(
                ProblemType.BAD_PUBLIC_KEY,
                f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {raw.key_size}",
            )
    elif isinstance(raw, ec.EllipticCurvePublicKey):
        if raw.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise AcmeError(ProblemType.BAD_PUBLIC_KEY, f"curve {raw.curve.name} is not allowed")
    elif not isinstance(raw, ed25519.Ed25519PublicKey):
        raise AcmeError(ProblemType.BAD_PUBLIC_KEY, "only RSA, ECDSA and Ed25519 keys are accepted")


def import_account_key(jwk: Any) -> AccountKey:
    """Import a public JWK from a request; badPublicKey for anything unusable."""
    if not isinstance(jwk, dict):
        raise AcmeError(ProblemType.MALFORMED, "jwk must be a JSON object")
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(str(kty))
    if members is None:
        raise AcmeError(ProblemType.BAD_PUBLIC_KEY, f"key type {kty!r} is not supported")
    if "d" in jwk or "p" in jwk:
        raise AcmeError(ProblemType.BAD_PUBLIC_KEY, "the JWK contains private key material")
    crv = jwk.get("crv")
    # A string first: "crv" may be any JSON value, and an array or object is unhashable.
    if kty in ("EC", "OKP") and not (isinstance(crv, str) and crv in ALLOWED_CURVES):
        raise AcmeError(ProblemType.BAD_PUBLIC_KEY, f"curve {crv!r} is not allowed")
    public = {m: jwk[m] for m in members if m in jwk}
    tp = thumbprint(public)
    try:
        key = JWKRegistry.import_key(dict(public))
    except Exception as exc:  # joserfc raises several types for bad key data
        raise AcmeError(ProblemType.BAD_PUBLIC_KEY, "the JWK is not a valid public key") from exc
    if not isinstance(key, ECKey | RSAKey | OKPKey):
        raise AcmeError(ProblemType.BAD_PUBLIC_KEY, "only asymmetric keys can sign ACME requests")
    raw = key.public_key
    _check_strength(raw)
    spki = raw.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return AccountKey(jwk=public, key=key, thumbprint=tp, spki_der=spki)


class KeyCache:
    """Imported keys by their thumbprint: content-addressed, so safe across replicas."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._keys: OrderedDict[str, AccountKey] = OrderedDict()

    def get(self, jwk: dict[str, Any]) -> AccountKey:
        cache_key = json.dumps(jwk, sort_keys=True, separators=(",", ":"))
        found = self._keys.get(cache_key)
        if found is not None:
            self._keys.move_to_end(cache_key)
            return found
        imported = import_account_key(jwk)
        self._keys[cache_key] = imported
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return imported
