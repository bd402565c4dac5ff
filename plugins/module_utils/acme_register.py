# Copyright: acmefleet developers
# Apache License 2.0
"""Register an ACME account with External Account Binding, and store it the way lego does.

The logic of the module acmefleet.fleet.lego_account. It runs on the managed host with only
the standard library and the ``openssl`` binary (Debian's ca-certificates depends on it):

- the account key is an EC P-256 key made by ``openssl ecparam``, written 0600 as SEC1
  ("EC PRIVATE KEY", what lego writes);
- requests are signed ES256 with ``openssl dgst -sha256 -sign KEYFILE`` (the signing input on
  stdin); the External Account Binding is HS256, computed here with ``hmac``.

The EAB HMAC key is on no command line, in no environment and in no file: openssl never sees
it, and no error text carries it (the server's problem documents cannot contain it either).

lego's layout (lego 4.9 ``cmd/accounts_storage.go``, ``cmd/account.go``): under ``--path``,
``accounts/<server host with ':' -> '_'>/<email>/account.json`` holds
``{"email", "registration": {"body": <ACME account object>, "uri": <account URL>}}``, and
``.../<email>/keys/<email>.key`` the PEM key. lego registers only when ``account.json`` is
missing, and asks the server again only when ``registration.body.status`` is empty.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "acmefleet.fleet.lego_account"
JOSE_JSON = "application/jose+json"
BAD_NONCE = "urn:ietf:params:acme:error:badNonce"
# SubjectPublicKeyInfo of an uncompressed P-256 key, up to the point (0x04 || X || Y).
P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
# The members of lego's acme.Account, in its order: what lego 4.9 keeps of the server's answer.
LEGO_ACCOUNT_FIELDS = (
    "status",
    "contact",
    "termsOfServiceAgreed",
    "orders",
    "onlyReturnExisting",
    "externalAccountBinding",
)
MAX_BODY = 1 << 20


class RegistrationError(Exception):
    """Why the account could not be registered; ``problem``: the server's problem document."""

    def __init__(self, message: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.problem = problem or {}


# ------------------------------------------------------------------ encodings


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_hmac_key(text: str) -> bytes:
    """The EAB key from base64url; padding and surrounding blanks are tolerated.

    The error never quotes the key.
    """
    value = text.strip().rstrip("=")
    if not value or any(c not in _B64URL_ALPHABET for c in value) or len(value) % 4 == 1:
        raise RegistrationError("eab_hmac_key is not base64url")
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise RegistrationError("eab_hmac_key is not base64url") from None
    return key


_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if not 1 <= count <= 2:
        raise ValueError("unsupported DER length")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def ecdsa_der_to_raw(der: bytes, size: int = 32) -> bytes:
    """``SEQUENCE { INTEGER r, INTEGER s }`` (what openssl prints) → r || s, ``size`` bytes each.

    JWS (RFC 7518 §3.4) wants the raw form.
    """
    if len(der) < 8 or der[0] != 0x30:
        raise ValueError("not a DER ECDSA signature")
    length, pos = _der_length(der, 1)
    if pos + length != len(der):
        raise ValueError("DER ECDSA signature has trailing or missing bytes")
    parts = []
    for _ in range(2):
        if der[pos] != 0x02:
            raise ValueError("DER ECDSA signature: INTEGER expected")
        length, pos = _der_length(der, pos + 1)
        value = int.from_bytes(der[pos : pos + length], "big")
        if value.bit_length() > size * 8:
            raise ValueError("DER ECDSA signature: integer too large for the curve")
        parts.append(value.to_bytes(size, "big"))
        pos += length
    if pos != len(der):
        raise ValueError("DER ECDSA signature has trailing bytes")
    return parts[0] + parts[1]


def p256_jwk(spki_der: bytes) -> dict[str, str]:
    """The JWK of an uncompressed P-256 SubjectPublicKeyInfo (``openssl ec -pubout``)."""
    if len(spki_der) != len(P256_SPKI_PREFIX) + 65 or not spki_der.startswith(
        P256_SPKI_PREFIX + b"\x04"
    ):
        raise ValueError("not an uncompressed P-256 public key")
    point = spki_der[len(P256_SPKI_PREFIX) + 1 :]
    return {"crv": "P-256", "kty": "EC", "x": b64url(point[:32]), "y": b64url(point[32:])}


def _json_b64(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def eab_binding(kid: str, hmac_key: bytes, url: str, jwk: dict[str, str]) -> dict[str, str]:
    """RFC 8555 §7.3.4: HS256 over {"alg","kid","url"} and the account's JWK, flattened."""
    protected = _json_b64({"alg": "HS256", "kid": kid, "url": url})
    payload = _json_b64(jwk)
    mac = hmac.new(hmac_key, f"{protected}.{payload}".encode("ascii"), hashlib.sha256).digest()
    return {"protected": protected, "payload": payload, "signature": b64url(mac)}


# ------------------------------------------------------------------ lego's files


@dataclass(frozen=True)
class LegoAccountPaths:
    """Where lego 4.9 keeps the account of ``email`` with ``server`` under ``--path``."""

    path: str
    server: str
    email: str

    @property
    def server_dir(self) -> str:
        # Go's url.URL.Host: the netloc without user info; ':' → '_', '/' → separator.
        host = urlsplit(self.server).netloc.rpartition("@")[2]
        return host.replace(":", "_").replace("/", os.sep)

    @property
    def user_dir(self) -> str:
        return os.path.join(self.path, "accounts", self.server_dir, self.email)

    @property
    def account_file(self) -> str:
        return os.path.join(self.user_dir, "account.json")

    @property
    def keys_dir(self) -> str:
        return os.path.join(self.user_dir, "keys")

    @property
    def key_file(self) -> str:
        return os.path.join(self.keys_dir, f"{self.email}.key")


def account_json(email: str, uri: str, body: dict[str, Any]) -> bytes:
    """lego's account.json: ``json.MarshalIndent(account, "", "\\t")`` of its Account struct."""
    # Go's omitempty drops false, "", empty lists and absent members.
    kept = {
        name: body[name]
        for name in LEGO_ACCOUNT_FIELDS
        if body.get(name) is not None and body[name] is not False and body[name] not in ("", [])
    }
    account = {"email": email, "registration": {"body": kept, "uri": uri}}
    return json.dumps(account, indent="\t").encode()


@dataclass
class Written:
    """Files and directories this run created: removed again if the registration fails."""

    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)

    def makedirs(self, path: str) -> None:
        missing = []
        while not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for directory in reversed(missing):
            os.mkdir(directory, 0o700)  # lego's createNonExistingFolder mode
            self.dirs.append(directory)

    def write_atomically(self, path: str, data: bytes) -> None:
        """A 0600 temporary file in the same directory, flushed, then renamed over ``path``."""
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".lego_account.")
        try:
            with os.fdopen(handle, "wb") as out:
                os.fchmod(out.fileno(), 0o600)
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self.files.append(path)

    def remove(self) -> None:
        for path in reversed(self.files):
            with contextlib.suppress(OSError):
                os.unlink(path)
        for directory in reversed(self.dirs):
            with contextlib.suppress(OSError):
                os.rmdir(directory)


# ------------------------------------------------------------------ openssl


class OpenSSL:
    """The ``openssl`` binary. Its argv holds subcommands and file names only, never a secret."""

    def __init__(self, binary: str | None) -> None:
        self.binary = binary  # None: not installed (needed only to register)

    def run(self, args: list[str], stdin: bytes = b"") -> bytes:
        if self.binary is None:
            raise RegistrationError("the openssl binary is not installed")
        done = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            check=False,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        )
        if done.returncode != 0:
            error = done.stderr.decode(errors="replace").strip().splitlines()
            raise RegistrationError(
                f"openssl {args[0]} failed ({done.returncode}): {' '.join(error[-2:])}"
            )
        return done.stdout

    def generate_p256_key(self) -> bytes:
        """SEC1 PEM ("EC PRIVATE KEY") on stdout: the key never touches a file unprotected."""
        return self.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout"])

    def public_jwk(self, key_file: str) -> dict[str, str]:
        spki = self.run(["ec", "-in", key_file, "-pubout", "-outform", "DER"])
        try:
            return p256_jwk(spki)
        except ValueError:
            raise RegistrationError(
                f"{key_file} is not an EC P-256 key: this module signs with ES256 (ec256) only"
            ) from None

    def sign_es256(self, key_file: str, data: bytes) -> bytes:
        der = self.run(["dgst", "-sha256", "-sign", key_file], stdin=data)
        try:
            return ecdsa_der_to_raw(der)
        except ValueError as exc:
            raise RegistrationError(f"openssl dgst returned no ECDSA signature: {exc}") from None


# ------------------------------------------------------------------ ACME over HTTPS


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self, what: str) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            raise RegistrationError(f"{what}: the server did not answer JSON") from None
        if not isinstance(value, dict):
            raise RegistrationError(f"{what}: the server did not answer a JSON object")
        return value

    def problem(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        if not isinstance(value, dict):
            return {}
        return {k: value[k] for k in ("type", "detail", "status") if k in value}


class AcmeHttp:
    def __init__(self, ca_file: str | None, timeout: float) -> None:
        self.context = ssl.create_default_context(cafile=ca_file)
        self.timeout = timeout

    def request(
        self, method: str, url: str, body: bytes | None = None, content_type: str | None = None
    ) -> Response:
        if urlsplit(url).scheme != "https":
            raise RegistrationError(f"{method} {url}: only https URLs are used")
        headers = {"User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        # S310: https only, checked above.
        request = urllib.request.Request(  # noqa: S310
            url, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout, context=self.context
            ) as answer:
                return Response(answer.status, _lower(answer.headers), answer.read(MAX_BODY))
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, _lower(exc.headers), exc.read(MAX_BODY))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistrationError(f"{method} {url} failed: {reason}") from None


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()} if headers else {}


@dataclass(frozen=True)
class Registration:
    uri: str
    body: dict[str, Any]
    created: bool  # 201: a new account; 200: the server already had one for this key


def _fail(what: str, answer: Response) -> RegistrationError:
    problem = answer.problem()
    text = f"{problem.get('type', 'no problem type')}: {problem.get('detail', '')}".strip(": ")
    return RegistrationError(f"{what}: HTTP {answer.status} {text}", problem)


def register(
    http: AcmeHttp,
    openssl: OpenSSL,
    key_file: str,
    directory_url: str,
    email: str,
    kid: str,
    hmac_key: bytes,
) -> Registration:
    """newAccount with an EAB (termsOfServiceAgreed, contact mailto:email); one badNonce retry."""
    answer = http.request("GET", directory_url)
    if answer.status != 200:
        raise _fail(f"GET {directory_url}", answer)
    directory = answer.json("directory")
    new_account, new_nonce = directory.get("newAccount"), directory.get("newNonce")
    if not isinstance(new_account, str) or not isinstance(new_nonce, str):
        raise RegistrationError(f"{directory_url}: the directory has no newAccount or newNonce")

    jwk = openssl.public_jwk(key_file)
    payload = _json_b64(
        {
            "termsOfServiceAgreed": True,
            "contact": [f"mailto:{email}"],
            "externalAccountBinding": eab_binding(kid, hmac_key, new_account, jwk),
        }
    )
    nonce = _fresh_nonce(http, new_nonce)
    for attempt in (1, 2):
        protected = _json_b64({"alg": "ES256", "jwk": jwk, "nonce": nonce, "url": new_account})
        signature = openssl.sign_es256(key_file, f"{protected}.{payload}".encode("ascii"))
        body = json.dumps(
            {"protected": protected, "payload": payload, "signature": b64url(signature)}
        ).encode()
        answer = http.request("POST", new_account, body, JOSE_JSON)
        if answer.status in (200, 201):
            uri = answer.headers.get("location", "")
            if not uri:
                raise RegistrationError("newAccount: the server sent no Location")
            return Registration(uri, answer.json("newAccount"), answer.status == 201)
        if attempt == 1 and answer.problem().get("type") == BAD_NONCE:
            nonce = answer.headers.get("replay-nonce") or _fresh_nonce(http, new_nonce)
            continue
        raise _fail(f"POST {new_account}", answer)
    raise AssertionError("unreachable")  # pragma: no cover


def _fresh_nonce(http: AcmeHttp, url: str) -> str:
    answer = http.request("HEAD", url)
    nonce = answer.headers.get("replay-nonce")
    if answer.status not in (200, 204) or not nonce:
        raise _fail(f"HEAD {url} (no Replay-Nonce)", answer)
    return nonce


# ------------------------------------------------------------------ the module's job


def read_account_uri(account_file: str) -> str | None:
    try:
        with open(account_file, "rb") as handle:
            account = json.load(handle)
        uri = account["registration"]["uri"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return uri if isinstance(uri, str) else None


def directory_base(server: str) -> str:
    """The directory URL without its last segment: the prefix of the URLs the server hands out.

    lego keys an account by host:port and e-mail only, so two directories of one server
    (acmefleet's endpoints ``/acme/<endpoint>/directory``) share ``account.json``; its
    account URL tells whose it is.
    """
    return server.rsplit("/", 1)[0] + "/"


def ensure_account(
    *,
    path: str,
    server: str,
    email: str,
    eab_kid: str,
    eab_hmac_key: str,
    ca_file: str | None,
    openssl: OpenSSL,
    check_mode: bool,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Register and write lego's account unless ``account.json`` exists; the module's result."""
    if not email or "/" in email or email in (".", ".."):
        raise RegistrationError("email must be an address (it names a directory)")
    if urlsplit(server).scheme != "https" or not urlsplit(server).netloc:
        raise RegistrationError("server must be an https directory URL")
    paths = LegoAccountPaths(path, server, email)
    result: dict[str, Any] = {"account_file": paths.account_file, "key_file": paths.key_file}
    replaced: str | None = None
    if os.path.exists(paths.account_file):
        existing = read_account_uri(paths.account_file)
        if existing is not None and existing.startswith(directory_base(server)):
            return {**result, "changed": False, "account_uri": existing}
        # Another directory's account (the host's endpoint changed): registered anew with a
        # new key, which lego then uses for this directory.
        replaced = existing
    if not eab_kid:
        raise RegistrationError("eab_kid is empty")
    hmac_key = decode_hmac_key(eab_hmac_key)
    if check_mode:
        return {**result, "changed": True, "account_uri": None}

    http = AcmeHttp(ca_file, timeout)
    written = Written()
    registered: Registration | None = None
    old_umask = os.umask(0o077)
    try:
        written.makedirs(paths.keys_dir)
        key_generated = replaced is not None or not os.path.exists(paths.key_file)
        # A replacement's key waits beside the old one until the server took it: a failed
        # registration leaves the old account whole.
        key_file = paths.key_file + ".new" if replaced is not None else paths.key_file
        if key_generated:
            written.write_atomically(key_file, openssl.generate_p256_key())
        registered = register(http, openssl, key_file, server, email, eab_kid, hmac_key)
        if key_file != paths.key_file:
            os.replace(key_file, paths.key_file)
        written.write_atomically(
            paths.account_file, account_json(email, registered.uri, registered.body)
        )
    except BaseException as exc:
        if registered is None:
            written.remove()
            raise
        # The server holds the account and the credential is used up: keep the key.
        raise RegistrationError(
            f"the account {registered.uri} was registered but {paths.account_file} could not be "
            f"written ({exc}); the key {paths.key_file} is kept: write the file by hand"
        ) from None
    finally:
        os.umask(old_umask)
    return {
        **result,
        "changed": True,
        "account_uri": registered.uri,
        "status": registered.body.get("status"),
        "key_generated": key_generated,
        "existing_account": not registered.created,
        "replaced_account_uri": replaced,
    }
