"""A small, flexible ACME (RFC 8555) client for integration tests and benchmarks.

Low-level calls (``post``, ``new_account``, ``new_order`` ...) return the raw
``httpx.Response`` and never raise on 4xx/5xx, so negative tests can inspect
problem documents.  Every knob needed to craft broken requests is exposed:
header overrides (``DELETE`` removes a field), explicit nonces, foreign keys,
raw payload bytes and a ``tamper`` hook on the final JWS body.
Flows (``poll``, ``download_certificate``, ``issue_certificate``) raise
``AcmeError`` / ``TimeoutError`` instead.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import email.utils
import hashlib
import hmac
import ipaddress
import json
import ssl
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

JOSE_JSON: Final = "application/jose+json"
PEM_CHAIN: Final = "application/pem-certificate-chain"
PROBLEM_JSON: Final = "application/problem+json"

KeyType = Literal["ec256", "ec384", "ec521", "rsa1024", "rsa2048", "rsa3072", "rsa4096", "ed25519"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
JoseKey = ECKey | RSAKey | OKPKey
Identifier = tuple[str, str]
Http01Responder = Callable[[str, str], None]
Tamper = Callable[[dict[str, Any]], dict[str, Any]]


class _Delete:
    """Sentinel: a ``protected_overrides`` value removing that header field."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE: Final = _Delete()

_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_CURVES: dict[str, ec.EllipticCurve] = {
    "ec256": ec.SECP256R1(),
    "ec384": ec.SECP384R1(),
    "ec521": ec.SECP521R1(),
}
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_JOSERFC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"}
)
# strict_check_header=False: ACME adds "url" and "nonce" header fields.
_REGISTRY = jws.JWSRegistry(algorithms=_JOSERFC_ALGS, strict_check_header=False)


class AcmeError(Exception):
    """An ACME flow failed; carries the offending response when there is one."""

    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        detail = ""
        if response is not None:
            detail = f" [{response.request.method} {response.url} -> {response.status_code}]"
            detail += f" {response.text[:500]}"
        super().__init__(message + detail)
        self.response = response


# ---------------------------------------------------------------- encoding


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url, padded or not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_bytes(value: Any) -> bytes:
    """Compact JSON encoding."""
    return json.dumps(value, separators=(",", ":")).encode()


# ---------------------------------------------------------------- keys


def generate_private_key(key_type: KeyType = "ec256") -> PrivateKey:
    """A fresh private key of ``key_type`` (ec256/ec384/ec521/rsaNNNN/ed25519)."""
    if key_type in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[key_type])
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r}")


def _default_alg(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _EC_ALGS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return "EdDSA"


def _import_jose_key(key: PrivateKey) -> JoseKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(key)
    if isinstance(key, rsa.RSAPrivateKey):
        with warnings.catch_warnings():  # weak keys are wanted by negative tests
            warnings.simplefilter("ignore", SecurityWarning)
            return RSAKey.import_key(key)
    return OKPKey.import_key(key)


class AccountKey:
    """A private key, its JWS algorithm and its public JWK."""

    def __init__(self, private_key: PrivateKey, alg: str | None = None) -> None:
        self.private_key = private_key
        self.alg = alg or _default_alg(private_key)
        self.jose_key = _import_jose_key(private_key)
        full = self.jose_key.as_dict(private=False)
        members = _THUMBPRINT_MEMBERS[str(full["kty"])]
        self.jwk: dict[str, str] = {name: str(full[name]) for name in members}

    @classmethod
    def generate(cls, key_type: KeyType = "ec256", alg: str | None = None) -> AccountKey:
        """Generate a key of ``key_type`` (default ES256 / P-256)."""
        return cls(generate_private_key(key_type), alg)

    @classmethod
    def coerce(cls, key: AccountKey | PrivateKey | None) -> AccountKey:
        """Accept an AccountKey, a cryptography private key or None (new ES256 key)."""
        if key is None:
            return cls.generate()
        return key if isinstance(key, AccountKey) else cls(key)

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 JWK thumbprint, base64url."""
        return b64url(hashlib.sha256(json_bytes(dict(sorted(self.jwk.items())))).digest())

    def key_authorization(self, token: str) -> str:
        """RFC 8555 §8.1 key authorization for ``token``."""
        return f"{token}.{self.thumbprint()}"


# ---------------------------------------------------------------- JWS


def apply_overrides(header: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Copy ``header`` with ``overrides`` applied (``DELETE`` removes a field)."""
    result = dict(header)
    for name, value in (overrides or {}).items():
        if value is DELETE:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def _encode_body(payload: Mapping[str, Any] | bytes | str | None) -> bytes:
    if payload is None:
        return b""  # POST-as-GET
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json_bytes(payload)


def _joserfc_flattened(
    protected: Mapping[str, Any], payload: bytes, key: JoseKey | bytes
) -> dict[str, str] | None:
    """joserfc's flattened JWS, or None when joserfc refuses the header or key."""
    try:
        jose_key = OctKey.import_key(key) if isinstance(key, bytes) else key
        signed = jws.serialize_json(
            {"protected": dict(protected)}, payload, jose_key, registry=_REGISTRY
        )
    except (JoseError, ValueError, TypeError):
        return None
    return {name: str(value) for name, value in signed.items()}


def _raw_signature(signing_input: bytes, key: AccountKey | bytes, alg: Any) -> bytes:
    """HMAC with raw key bytes, else the key's natural algorithm (whatever ``alg`` says)."""
    if isinstance(key, bytes):
        return hmac.new(key, signing_input, _HMAC_HASHES.get(alg, hashlib.sha256)).digest()
    natural = _default_alg(key.private_key)
    return jws.JWSRegistry.algorithms[natural].sign(signing_input, key.jose_key)


def _hand_built(
    protected: Mapping[str, Any], payload: bytes, key: AccountKey | bytes | None
) -> dict[str, str]:
    """Flattened JWS built by hand (``alg: none``, malformed headers, odd keys)."""
    header = b64url(json_bytes(protected))
    body = b64url(payload)
    alg = protected.get("alg")
    signature = b""
    if key is not None and alg != "none":
        signature = _raw_signature(f"{header}.{body}".encode(), key, alg)
    return {"protected": header, "payload": body, "signature": b64url(signature)}


def sign_jws(
    protected: Mapping[str, Any], payload: bytes, key: AccountKey | bytes | None
) -> dict[str, str]:
    """Flattened JWS JSON serialization of ``payload`` under ``protected``.

    ``key`` is an AccountKey, raw HMAC key bytes, or None (unsigned).  joserfc
    does the work; what it refuses (``none``, bad header types, alg/key
    mismatch, short HMAC keys, deprecated EdDSA) is built by hand.
    """
    alg = protected.get("alg")
    signed = None
    if isinstance(key, bytes) and alg in _HMAC_HASHES and len(key) >= 14:  # joserfc's minimum
        signed = _joserfc_flattened(protected, payload, key)
    elif isinstance(key, AccountKey) and alg == key.alg and alg in _JOSERFC_ALGS:
        signed = _joserfc_flattened(protected, payload, key.jose_key)
    return signed or _hand_built(protected, payload, key)


def decode_jws_part(part: str) -> Any:
    """Decode the ``protected`` or ``payload`` member of a flattened JWS."""
    return json.loads(b64url_decode(part)) if part else None


def eab_jws(
    kid: str,
    hmac_key_b64url: str,
    url: str,
    account_jwk: Mapping[str, Any] | None,
    alg: str = "HS256",
    *,
    protected_overrides: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | bytes | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """RFC 8555 §7.3.4 EAB inner JWS: {alg, kid, url} over the account's public JWK.

    Negative-test knobs: ``nonce`` adds a nonce field, ``payload`` replaces the
    JWK (e.g. another key's), ``protected_overrides`` edits the header.
    """
    protected: dict[str, Any] = {"alg": alg, "kid": kid, "url": url}
    if nonce is not None:
        protected["nonce"] = nonce
    protected = apply_overrides(protected, protected_overrides)
    body = _encode_body(payload if payload is not None else account_jwk)
    return sign_jws(protected, body, b64url_decode(hmac_key_b64url))


# ---------------------------------------------------------------- CSR


def make_csr(
    names: Iterable[str],
    key: PrivateKey | None = None,
    key_type: KeyType = "ec256",
    *,
    common_name: bool = True,
) -> tuple[bytes, PrivateKey]:
    """DER CSR with all ``names`` as SANs (DNS or IP), and its private key."""
    names = list(names)
    key = key or generate_private_key(key_type)
    builder = x509.CertificateSigningRequestBuilder()
    if common_name and names and len(names[0]) <= 64:
        builder = builder.subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False
        )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.DER), key


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def identifiers_of(names: Iterable[str | Identifier]) -> list[dict[str, str]]:
    """ACME identifier objects; bare strings become ``dns`` (or ``ip`` when an address)."""
    result = []
    for name in names:
        if isinstance(name, tuple):
            kind, value = name
        else:
            kind, value = ("ip", name) if _is_ip(name) else ("dns", name)
        result.append({"type": kind, "value": value})
    return result


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def pem_to_der_chain(pem: str) -> list[bytes]:
    """DER certificates of a PEM chain (leaf first)."""
    return [
        cert.public_bytes(serialization.Encoding.DER)
        for cert in x509.load_pem_x509_certificates(pem.encode())
    ]


def retry_after_seconds(response: httpx.Response, default: float) -> float:
    """``Retry-After`` as seconds (delta or HTTP date); ``default`` when absent or bad."""
    value = response.headers.get("Retry-After")
    if value is None:
        return default
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


# ---------------------------------------------------------------- client


@dataclass
class SentRequest:
    """What the client last POSTed (for replay tests)."""

    url: str
    protected: dict[str, Any]
    body: dict[str, Any]
    content_type: str


@dataclass
class Order:
    """An order resource: its URL and latest JSON."""

    url: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.body.get("status"))


class AcmeClient:
    """ACME client bound to one directory and one account key.

    ``kid`` holds the account URL once ``new_account`` succeeded; until then
    requests are signed with an embedded ``jwk``.
    """

    def __init__(
        self,
        directory_url: str,
        ca_bundle: str | Path,
        account_key: AccountKey | PrivateKey | None = None,
        *,
        timeout: float = 30.0,
        poll_interval: float = 0.05,
        bad_nonce_retries: int = 0,
        user_agent: str = "acmefleet-tests",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport``: where requests really go (say, a different server replica for
        each); it verifies TLS itself, ``ca_bundle`` then applies only to the default."""
        self.directory_url = directory_url
        self.key = AccountKey.coerce(account_key)
        self.kid: str | None = None
        self.poll_interval = poll_interval
        self.bad_nonce_retries = bad_nonce_retries
        self.nonces: collections.deque[str] = collections.deque(maxlen=64)
        self.last_nonce: str | None = None
        self.last_request: SentRequest | None = None
        self._directory: dict[str, Any] | None = None
        self.http = httpx.Client(
            verify=ssl.create_default_context(cafile=str(ca_bundle)),
            timeout=timeout,
            trust_env=False,
            headers={"User-Agent": user_agent},
            event_hooks={"response": [self._harvest_nonce]},
            transport=transport,
        )

    # -- plumbing

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AcmeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _harvest_nonce(self, response: httpx.Response) -> None:
        nonce = response.headers.get("Replay-Nonce")
        if nonce:
            self.nonces.append(nonce)

    @property
    def directory(self) -> dict[str, Any]:
        """The directory object (fetched on first use)."""
        if self._directory is None:
            response = self.http.get(self.directory_url)
            if response.status_code != 200:
                raise AcmeError("directory fetch failed", response)
            self._directory = response.json()
        return self._directory

    def url_for(self, resource: str) -> str:
        """Directory URL of ``resource`` (e.g. ``newOrder``)."""
        return str(self.directory[resource])

    def new_nonce(self) -> str:
        """HEAD newNonce and return the fresh nonce (not pooled)."""
        response = self.http.head(self.url_for("newNonce"))
        nonce = str(response.headers.get("Replay-Nonce", ""))
        if not nonce:
            raise AcmeError("newNonce returned no Replay-Nonce", response)
        with contextlib.suppress(ValueError):
            self.nonces.remove(nonce)  # the response hook pooled it; it is the caller's
        return nonce

    def take_nonce(self) -> str:
        """A pooled nonce, or a new one."""
        try:
            return self.nonces.popleft()
        except IndexError:
            return self.new_nonce()

    # -- JWS POST

    def protected_header(
        self, url: str, nonce: str | None, key: AccountKey, use_jwk: bool
    ) -> dict[str, Any]:
        """Default protected header: alg, nonce, url and kid (or jwk)."""
        header: dict[str, Any] = {"alg": key.alg, "nonce": nonce, "url": url}
        if use_jwk or self.kid is None:
            header["jwk"] = key.jwk
        else:
            header["kid"] = self.kid
        return header

    def post(
        self,
        url: str,
        payload: Mapping[str, Any] | bytes | str | None,
        *,
        use_jwk: bool = False,
        protected_overrides: Mapping[str, Any] | None = None,
        content_type: str = JOSE_JSON,
        nonce: str | None = None,
        key: AccountKey | PrivateKey | None = None,
        tamper: Tamper | None = None,
    ) -> httpx.Response:
        """Sign and POST; ``payload=None`` is POST-as-GET. Never raises on HTTP errors.

        ``key`` signs instead of the account key; ``tamper`` edits the final
        JWS body dict (e.g. corrupt the signature, add an unprotected header).
        """
        attempts = 1 if nonce is not None else 1 + self.bad_nonce_retries
        signer = self.key if key is None else AccountKey.coerce(key)
        response: httpx.Response | None = None
        for _ in range(attempts):
            used_nonce = nonce if nonce is not None else self.take_nonce()
            protected = apply_overrides(
                self.protected_header(url, used_nonce, signer, use_jwk), protected_overrides
            )
            body: dict[str, Any] = sign_jws(protected, _encode_body(payload), signer)
            body = tamper(body) if tamper else body
            response = self.send_jws(url, body, content_type)
            self.last_nonce = used_nonce
            self.last_request = SentRequest(url, protected, body, content_type)
            if not is_problem(response, "badNonce"):
                break
        assert response is not None
        return response

    def send_jws(
        self, url: str, body: Mapping[str, Any] | bytes, content_type: str = JOSE_JSON
    ) -> httpx.Response:
        """POST an already-built JWS (dict or raw bytes) as is, e.g. to replay it."""
        content = body if isinstance(body, bytes) else json_bytes(body)
        return self.http.post(url, content=content, headers={"Content-Type": content_type})

    def get(self, url: str) -> httpx.Response:
        """POST-as-GET ``url``."""
        return self.post(url, None)

    # -- accounts

    def eab_jws(
        self,
        kid: str,
        hmac_key_b64url: str,
        url: str | None = None,
        alg: str = "HS256",
        **knobs: Any,
    ) -> dict[str, str]:
        """EAB inner JWS for this account key (``url`` defaults to newAccount)."""
        return eab_jws(
            kid, hmac_key_b64url, url or self.url_for("newAccount"), self.key.jwk, alg, **knobs
        )

    def new_account(
        self,
        eab: tuple[str, str] | Mapping[str, Any] | None = None,
        contact: list[str] | None = None,
        only_return_existing: bool = False,
        *,
        terms_of_service_agreed: bool | None = True,
        extra: Mapping[str, Any] | None = None,
        **post_knobs: Any,
    ) -> httpx.Response:
        """newAccount signed with ``jwk``; ``eab`` is (kid, hmac_b64url) or a prebuilt JWS.

        Stores the account URL in ``kid`` on 200/201.
        """
        payload: dict[str, Any] = {}
        if terms_of_service_agreed is not None:
            payload["termsOfServiceAgreed"] = terms_of_service_agreed
        if contact is not None:
            payload["contact"] = contact
        if only_return_existing:
            payload["onlyReturnExisting"] = True
        if isinstance(eab, tuple):
            payload["externalAccountBinding"] = self.eab_jws(*eab)
        elif eab is not None:
            payload["externalAccountBinding"] = dict(eab)
        payload.update(extra or {})
        post_knobs.setdefault("use_jwk", True)
        response = self.post(self.url_for("newAccount"), payload, **post_knobs)
        if response.status_code in (200, 201) and "Location" in response.headers:
            self.kid = response.headers["Location"]
        return response

    def account(self) -> httpx.Response:
        """POST-as-GET the account resource."""
        return self.get(self._account_url())

    def update_account(self, payload: Mapping[str, Any], **post_knobs: Any) -> httpx.Response:
        """POST ``payload`` to the account URL."""
        return self.post(self._account_url(), payload, **post_knobs)

    def deactivate(self, **post_knobs: Any) -> httpx.Response:
        """Deactivate the account (RFC 8555 §7.3.6)."""
        return self.update_account({"status": "deactivated"}, **post_knobs)

    def key_change(
        self,
        new_key: AccountKey | PrivateKey,
        *,
        inner_overrides: Mapping[str, Any] | None = None,
        inner_payload: Mapping[str, Any] | bytes | None = None,
        **post_knobs: Any,
    ) -> httpx.Response:
        """Roll the account key over (§7.3.5); switches ``self.key`` on 200."""
        new = AccountKey.coerce(new_key)
        url = self.url_for("keyChange")
        inner_header = apply_overrides(
            {"alg": new.alg, "jwk": new.jwk, "url": url}, inner_overrides
        )
        payload = (
            inner_payload
            if inner_payload is not None
            else {"account": self._account_url(), "oldKey": self.key.jwk}
        )
        inner = sign_jws(inner_header, _encode_body(payload), new)
        response = self.post(url, inner, **post_knobs)
        if response.status_code == 200:
            self.key = new
        return response

    def _account_url(self) -> str:
        if self.kid is None:
            raise AcmeError("no account: call new_account first")
        return self.kid

    # -- orders

    def new_order(
        self,
        identifiers: Iterable[str | Identifier],
        profile: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        **post_knobs: Any,
    ) -> httpx.Response:
        """newOrder for ``identifiers`` (names or (type, value) tuples)."""
        payload: dict[str, Any] = {"identifiers": identifiers_of(identifiers)}
        if profile is not None:
            payload["profile"] = profile
        payload.update(extra or {})
        return self.post(self.url_for("newOrder"), payload, **post_knobs)

    def finalize(
        self, order: Order | Mapping[str, Any] | str, csr_der: bytes, **post_knobs: Any
    ) -> httpx.Response:
        """Finalize ``order`` (Order, order JSON or finalize URL) with a DER CSR."""
        if isinstance(order, Order):
            url = str(order.body["finalize"])
        elif isinstance(order, str):
            url = order
        else:
            url = str(order["finalize"])
        return self.post(url, {"csr": b64url(csr_der)}, **post_knobs)

    def answer_challenge(self, challenge_url: str, **post_knobs: Any) -> httpx.Response:
        """Tell the server to validate a challenge (payload ``{}``)."""
        return self.post(challenge_url, {}, **post_knobs)

    def deactivate_authorization(self, authz_url: str) -> httpx.Response:
        """Deactivate an authorization (§7.5.2)."""
        return self.post(authz_url, {"status": "deactivated"})

    def poll(
        self, url: str, until: Iterable[str] = ("valid", "invalid"), timeout: float = 30.0
    ) -> dict[str, Any]:
        """POST-as-GET ``url`` until its status is in ``until``; honours Retry-After."""
        wanted = set(until)
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(url)
            if response.status_code != 200:
                raise AcmeError(f"polling {url} failed", response)
            body: dict[str, Any] = response.json()
            if body.get("status") in wanted:
                return body
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{url} still {body.get('status')!r} after {timeout}s")
            time.sleep(min(retry_after_seconds(response, self.poll_interval), remaining))

    def poll_order(
        self, order_url: str, until: Iterable[str] = ("valid", "invalid"), timeout: float = 30.0
    ) -> dict[str, Any]:
        """Poll an order until its status is in ``until``."""
        return self.poll(order_url, until, timeout)

    def download_certificate(self, url: str, **post_knobs: Any) -> str:
        """POST-as-GET the certificate URL and return the PEM chain."""
        response = self.post(url, None, **post_knobs)
        if response.status_code != 200 or "BEGIN CERTIFICATE" not in response.text:
            raise AcmeError("certificate download failed", response)
        return response.text

    def revoke(
        self,
        cert_der: bytes,
        reason: int | None = None,
        *,
        use_cert_key: PrivateKey | AccountKey | None = None,
        **post_knobs: Any,
    ) -> httpx.Response:
        """revokeCert (§7.6), signed by the account or, with ``use_cert_key``, the cert key."""
        payload: dict[str, Any] = {"certificate": b64url(cert_der)}
        if reason is not None:
            payload["reason"] = reason
        if use_cert_key is not None:
            post_knobs.setdefault("key", use_cert_key)
            post_knobs.setdefault("use_jwk", True)
        return self.post(self.url_for("revokeCert"), payload, **post_knobs)

    # -- full flow

    def issue_certificate(
        self,
        names: Iterable[str | Identifier],
        *,
        csr_key: PrivateKey | None = None,
        key_type: KeyType = "ec256",
        respond_http01: Http01Responder | None = None,
        profile: str | None = None,
        timeout: float = 30.0,
    ) -> str:
        """newOrder -> authorizations -> finalize -> poll -> download; returns the PEM chain.

        Pending authorizations are solved with http-01: ``respond_http01(token,
        key_authorization)`` is called (if given) before answering the challenge.
        """
        deadline = time.monotonic() + timeout
        idents = identifiers_of(names)
        response = self.new_order([(i["type"], i["value"]) for i in idents], profile)
        if response.status_code != 201:
            raise AcmeError("newOrder failed", response)
        order = Order(response.headers["Location"], response.json())
        for authz_url in order.body["authorizations"]:
            self._complete_authorization(authz_url, respond_http01, deadline)
        if order.status == "pending":
            order.body = self.poll_order(order.url, ("ready", "valid", "invalid"), _left(deadline))
        if order.status == "ready":
            self._finalize(order, [i["value"] for i in idents], csr_key, key_type)
        if order.status == "processing":
            order.body = self.poll_order(order.url, ("valid", "invalid"), _left(deadline))
        if order.status != "valid":
            raise AcmeError(f"order ended {order.status}: {order.body}")
        return self.download_certificate(order.body["certificate"])

    def _finalize(
        self, order: Order, names: list[str], csr_key: PrivateKey | None, key_type: KeyType
    ) -> None:
        csr_der, _ = make_csr(names, csr_key, key_type)
        response = self.finalize(order, csr_der)
        if response.status_code != 200:
            raise AcmeError("finalize failed", response)
        order.body = response.json()

    def _complete_authorization(
        self, authz_url: str, respond_http01: Http01Responder | None, deadline: float
    ) -> None:
        response = self.get(authz_url)
        if response.status_code != 200:
            raise AcmeError("authorization fetch failed", response)
        authz = response.json()
        if authz["status"] == "valid":
            return
        if authz["status"] != "pending":
            raise AcmeError(f"authorization {authz_url} is {authz['status']}", response)
        challenge = _find_challenge(authz, "http-01")
        if respond_http01 is not None:
            respond_http01(challenge["token"], self.key.key_authorization(challenge["token"]))
        answer = self.answer_challenge(challenge["url"])
        if answer.status_code != 200:
            raise AcmeError("challenge answer failed", answer)
        authz = self.poll(
            authz_url, ("valid", "invalid", "deactivated", "expired", "revoked"), _left(deadline)
        )
        if authz["status"] != "valid":
            raise AcmeError(f"authorization ended {authz['status']}: {authz}")


def _find_challenge(authz: Mapping[str, Any], kind: str) -> dict[str, Any]:
    for challenge in authz.get("challenges", []):
        if challenge.get("type") == kind:
            return dict(challenge)
    raise AcmeError(f"no {kind} challenge in {authz}")


def _left(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("issuance deadline exceeded")
    return remaining


def is_problem(response: httpx.Response, kind: str | None = None) -> bool:
    """True for a problem document (of ``urn:ietf:params:acme:error:<kind>`` if given)."""
    if not response.headers.get("Content-Type", "").startswith(PROBLEM_JSON):
        return False
    if kind is None:
        return True
    return problem_type(response) == f"urn:ietf:params:acme:error:{kind}"


def problem_type(response: httpx.Response) -> str | None:
    """The problem ``type`` of an error response, if any."""
    try:
        return str(response.json().get("type"))
    except (ValueError, AttributeError):
        return None
