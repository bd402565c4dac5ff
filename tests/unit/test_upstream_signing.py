"""The upstream client's JWS, EAB and account key file (acmefleet/upstream/signing.py,
account_key.py).

What is shown: what ``AccountSigner`` signs is accepted by acmefleet's own server-side
verifiers (``jose.jws`` for the request JWS, ``jose.eab`` for the binding), for ES256 and
RS256 keys, by ``jwk`` and by ``kid``, POST-as-GET with an empty payload; the EAB HMAC key is
taken padded or not and, when it is not base64url, refused without being echoed. The account
key file is created 0600 in a 0700 directory and reused; a link, a loose mode, another
owner, an encrypted or weak key, a file too large are refused naming the path, never the
key; creators racing end with one key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.jose.b64 import b64url_decode, b64url_encode
from acmefleet.jose.eab import parse_eab, verify_eab
from acmefleet.jose.jws import parse_request_jws, verify_signature
from acmefleet.jose.keys import import_account_key, thumbprint
from acmefleet.upstream.account_key import MAX_KEY_FILE, load_account_key, read_private_file
from acmefleet.upstream.errors import AccountKeyError
from acmefleet.upstream.signing import AccountPrivateKey, AccountSigner

NEW_ACCOUNT = "https://ca.example/acme/new-acct"
NEW_ORDER = "https://ca.example/acme/new-order"
KID = "https://ca.example/acme/acct/1234"
HMAC_SECRET = bytes(range(32))
HMAC_KEY = b64url_encode(HMAC_SECRET)  # 43 characters, as ZeroSSL hands them out
WEAK_KEY_TEXT = re.escape("an account key must be ECDSA P-256 or RSA of 2048+ bits")

EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEYS: dict[str, AccountPrivateKey] = {"ES256": EC_KEY, "RS256": RSA_KEY}


@pytest.fixture(params=sorted(KEYS))
def signer(request: pytest.FixtureRequest) -> AccountSigner:
    return AccountSigner(KEYS[request.param])


def _server_checks(jws: dict[str, str], url: str, signer: AccountSigner) -> Any:
    """The request JWS as acmefleet's server checks it: form, then the signature with the
    account's key (taken from ``jwk``, or, for ``kid``, the key the account was made with)."""
    request = parse_request_jws(json.dumps(jws).encode(), url)
    key = import_account_key(request.jwk if request.jwk is not None else signer.jwk)
    verify_signature(request, key)
    assert key.thumbprint == signer.thumbprint
    return request


def _pem(key: Any, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password is not None
        else serialization.NoEncryption()
    )
    data: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return data


def _private_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.touch(mode=0o600)
    path.write_bytes(data)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------------- the request JWS


def test_a_jws_by_jwk_verifies_with_the_servers_verifier(signer: AccountSigner) -> None:
    payload = {"termsOfServiceAgreed": True, "contact": ["mailto:pki@example.org"]}
    request = _server_checks(signer.sign(NEW_ACCOUNT, "nonce-1", payload), NEW_ACCOUNT, signer)
    assert request.alg == signer.algorithm == ("ES256" if signer.key is EC_KEY else "RS256")
    assert request.jwk == signer.jwk and request.kid is None
    assert request.nonce == "nonce-1" and request.url == NEW_ACCOUNT
    assert request.payload_json() == payload
    assert "d" not in signer.jwk and "p" not in signer.jwk  # the public members only


def test_a_jws_by_kid_carries_no_jwk_and_verifies(signer: AccountSigner) -> None:
    payload = {"identifiers": [{"type": "dns", "value": "www.example.org"}]}
    jws = signer.sign(NEW_ORDER, "nonce-2", payload, kid=KID)
    request = _server_checks(jws, NEW_ORDER, signer)
    assert request.kid == KID and request.jwk is None
    assert set(request.protected) == {"alg", "kid", "nonce", "url"}
    assert request.payload_json() == payload


def test_a_post_as_get_has_an_empty_payload_and_verifies(signer: AccountSigner) -> None:
    jws = signer.sign(NEW_ORDER, "nonce-3", None, kid=KID)
    assert jws["payload"] == ""
    request = _server_checks(jws, NEW_ORDER, signer)
    assert request.is_post_as_get and request.payload == b""
    # An empty object is not a POST-as-GET (a challenge's answer, §7.5.1).
    answer = _server_checks(signer.sign(NEW_ORDER, "nonce-4", {}, kid=KID), NEW_ORDER, signer)
    assert not answer.is_post_as_get and answer.payload_json() == {}


def test_a_changed_payload_or_url_does_not_verify(signer: AccountSigner) -> None:
    jws = signer.sign(NEW_ORDER, "nonce-5", {"identifiers": []}, kid=KID)
    tampered = {**jws, "payload": b64url_encode(b'{"identifiers":[{}]}')}
    with pytest.raises(AcmeError, match="signature does not verify"):
        _server_checks(tampered, NEW_ORDER, signer)
    with pytest.raises(AcmeError) as caught:
        _server_checks(jws, NEW_ACCOUNT, signer)
    assert caught.value.type == ProblemType.UNAUTHORIZED


def test_es256_signatures_are_64_bytes_r_and_s_every_time() -> None:
    # r or s below 2^248 (one in 128 signatures) must still be 32 bytes each (RFC 7518 §3.4).
    signer = AccountSigner(EC_KEY)
    for number in range(300):
        jws = signer.sign(NEW_ORDER, f"n{number}", {"n": number}, kid=KID)
        assert len(b64url_decode(jws["signature"])) == 64
        _server_checks(jws, NEW_ORDER, signer)


def test_an_rsa_jwk_has_minimal_big_endian_members() -> None:
    jwk = AccountSigner(RSA_KEY).jwk
    assert jwk["e"] == "AQAB"
    assert len(b64url_decode(jwk["n"])) == 256
    assert set(jwk) == {"kty", "n", "e"}


# ---------------------------------------------------------------------- the EAB binding


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (HMAC_KEY, HMAC_KEY),  # as ZeroSSL hands it out, unpadded
        (HMAC_KEY + "=", HMAC_KEY),  # as some consoles show it, padded
        (HMAC_KEY + "=", HMAC_KEY + "="),
        (f"  {HMAC_KEY}\n", HMAC_KEY),  # read from a file with its newline
        (b64url_encode(b"sixteen byte key"), b64url_encode(b"sixteen byte key") + "=="),
    ],
)
def test_the_eab_binding_verifies_with_the_servers_verifier(
    signer: AccountSigner, given: str, stored: str
) -> None:
    binding = signer.eab_binding(NEW_ACCOUNT, "kid-1", given)
    request = parse_eab(binding, NEW_ACCOUNT)
    verify_eab(request, stored, signer.thumbprint)
    assert request.kid == "kid-1" and request.alg == "HS256"
    assert request.payload_jwk == signer.jwk
    assert json.loads(b64url_decode(binding["protected"])) == {
        "alg": "HS256",
        "kid": "kid-1",
        "url": NEW_ACCOUNT,
    }


def test_the_eab_binding_does_not_verify_with_another_key_or_account(signer: AccountSigner) -> None:
    binding = signer.eab_binding(NEW_ACCOUNT, "kid-1", HMAC_KEY)
    request = parse_eab(binding, NEW_ACCOUNT)
    with pytest.raises(AcmeError, match="MAC does not verify"):
        verify_eab(request, b64url_encode(b"another key of thirty-two bytes!"), signer.thumbprint)
    other = AccountSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(AcmeError, match="payload key is not the account key"):
        verify_eab(request, HMAC_KEY, other.thumbprint)
    with pytest.raises(AcmeError, match="'url' must equal the outer JWS 'url'"):
        parse_eab(binding, NEW_ORDER)


@pytest.mark.parametrize(
    "secret",
    [
        "sk+live/AbCdEf0123456789xyz",  # standard base64, not base64url
        "S3cr3t-With!Punctuation_0123",
        "S3cr3tWithStrayBitsAB",  # base64url alphabet, but not canonical
        "S3cr3t=Padding=Inside",
        "S3cr3t\x00NUL",
    ],
)
def test_a_non_base64url_hmac_key_is_refused_without_echoing_it(secret: str) -> None:
    with pytest.raises(ValueError) as caught:
        AccountSigner(EC_KEY).eab_binding(NEW_ACCOUNT, "kid-1", secret)
    assert str(caught.value) == "the EAB HMAC key is not base64url"
    whole = "".join(traceback.format_exception(caught.value))
    assert secret not in whole and secret.strip("=") not in whole


def test_the_key_authorization_is_the_token_and_the_rfc7638_thumbprint(
    signer: AccountSigner,
) -> None:
    token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
    assert signer.key_authorization(token) == f"{token}.{signer.thumbprint}"
    assert signer.thumbprint == thumbprint(signer.jwk)
    assert signer.thumbprint == import_account_key(signer.jwk).thumbprint
    assert len(b64url_decode(signer.thumbprint)) == 32


# ---------------------------------------------------------------------- the account key file


def test_a_key_is_created_0600_in_a_0700_directory_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "upstreams" / "ca" / "account.key"
    first = load_account_key(path, create=True)
    assert first.algorithm == "ES256"
    assert path.stat().st_mode & 0o7777 == 0o600
    assert path.parent.stat().st_mode & 0o7777 == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_account_key(path, create=True).thumbprint == first.thumbprint
    assert load_account_key(path).thumbprint == first.thumbprint
    assert sorted(p.name for p in path.parent.iterdir()) == ["account.key"]  # no temporary


def test_a_missing_key_is_not_created_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "account.key"
    with pytest.raises(AccountKeyError, match=str(path)):
        load_account_key(path)
    assert not path.exists()


def test_an_rsa_key_brought_from_elsewhere_is_used(tmp_path: Path) -> None:
    path = _private_file(tmp_path / "k", _pem(RSA_KEY))
    signer = load_account_key(path)
    assert signer.algorithm == "RS256" and signer.jwk == AccountSigner(RSA_KEY).jwk


@pytest.mark.parametrize("create", [False, True])
def test_a_symbolic_link_is_refused_and_not_followed(tmp_path: Path, create: bool) -> None:
    real = _private_file(tmp_path / "real.key", _pem(EC_KEY))
    link = tmp_path / "account.key"
    link.symlink_to(real)
    with pytest.raises(AccountKeyError, match="a symbolic link is refused") as caught:
        load_account_key(link, create=create)
    assert str(link) in str(caught.value)
    assert real.read_bytes() == _pem(EC_KEY)


def test_a_dangling_link_is_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "planted.key"
    target.parent.mkdir()
    link = tmp_path / "account.key"
    link.symlink_to(target)
    with pytest.raises(AccountKeyError, match="a symbolic link is refused"):
        load_account_key(link, create=True)
    assert not target.exists()
    assert link.is_symlink()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _private_file(tmp_path / "k", _pem(EC_KEY), mode)
    with pytest.raises(AccountKeyError, match=f"mode {mode:04o}.*chmod 600") as caught:
        load_account_key(path)
    assert str(path) in str(caught.value)
    assert "BEGIN" not in str(caught.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_key_of_another_user_is_refused(tmp_path: Path) -> None:
    path = _private_file(tmp_path / "k", _pem(EC_KEY))
    os.chown(path, 65534, 65534)
    with pytest.raises(AccountKeyError, match="belongs to uid 65534, not to this user"):
        load_account_key(path)


def test_an_encrypted_key_is_refused(tmp_path: Path) -> None:
    path = _private_file(tmp_path / "k", _pem(EC_KEY, b"passphrase"))
    with pytest.raises(AccountKeyError, match="is encrypted; the server needs it unencrypted"):
        load_account_key(path)


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["P-384", "RSA-1024", "Ed25519"],
)
def test_a_key_of_another_kind_or_too_weak_is_refused(tmp_path: Path, key: Any) -> None:
    pem = _pem(key)
    path = _private_file(tmp_path / "k", pem)
    with pytest.raises(AccountKeyError, match=WEAK_KEY_TEXT) as caught:
        load_account_key(path, create=True)
    assert str(path) in str(caught.value)
    assert pem.splitlines()[1].decode() not in str(caught.value)
    assert path.read_bytes() == pem  # never replaced by a new key


@pytest.mark.parametrize(
    "data", [b"", b"not a key\n", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_a_file_that_is_no_pem_key_is_refused(tmp_path: Path, data: bytes) -> None:
    path = _private_file(tmp_path / "k", data)
    with pytest.raises(AccountKeyError, match="is not a PEM private key"):
        load_account_key(path)


def test_a_directory_in_place_of_the_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.mkdir(mode=0o700)
    with pytest.raises(AccountKeyError, match="is not a regular file"):
        load_account_key(path, create=True)


def test_a_named_pipe_in_place_of_the_key_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "k"
    os.mkfifo(path, 0o600)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_account_key(path)
        except (AccountKeyError, OSError) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(2)
    blocked = thread.is_alive()
    if blocked:  # release it: a writer that opens and closes at once
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
    assert not blocked, "load_account_key blocked on a named pipe"
    assert isinstance(outcome[0], AccountKeyError)
    assert "is not a regular file" in str(outcome[0])


def test_a_private_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = _private_file(tmp_path / "secret", b"x" * 101)
    with pytest.raises(AccountKeyError, match=f"{path} is larger than 100 bytes"):
        read_private_file(path, 100)
    assert read_private_file(path, 101) == b"x" * 101
    big = _private_file(tmp_path / "big.key", b"-" * (MAX_KEY_FILE + 1))
    with pytest.raises(AccountKeyError, match=f"larger than {MAX_KEY_FILE} bytes"):
        load_account_key(big)


# ---------------------------------------------------------------------- creators racing


def _race_threads(path: Path, count: int) -> list[str | AccountKeyError]:
    barrier = threading.Barrier(count)
    results: list[str | AccountKeyError] = []
    lock = threading.Lock()

    def create() -> None:
        barrier.wait()
        try:
            outcome: str | AccountKeyError = load_account_key(path, create=True).thumbprint
        except AccountKeyError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=create) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_threads_creating_at_once_never_end_with_two_keys(tmp_path: Path) -> None:
    for attempt in range(10):
        path = tmp_path / f"round-{attempt}" / "account.key"
        results = _race_threads(path, 4)
        on_disk = load_account_key(path).thumbprint
        assert {r for r in results if isinstance(r, str)} <= {on_disk}
        assert sorted(p.name for p in path.parent.iterdir()) == ["account.key"]


def test_threads_creating_at_once_all_end_with_the_same_key(tmp_path: Path) -> None:
    for attempt in range(10):
        path = tmp_path / f"round-{attempt}" / "account.key"
        results = _race_threads(path, 4)
        assert results == [load_account_key(path).thumbprint] * 4, results


_CREATE_IN_CHILD = """
import sys, time
from pathlib import Path
from acmefleet.upstream.account_key import load_account_key
start = float(sys.argv[2])
while time.time() < start:
    pass
print(load_account_key(Path(sys.argv[1]), create=True).thumbprint)
"""


def test_processes_creating_at_once_end_with_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "upstreams" / "ca" / "account.key"
    start = str(time.time() + 1.5)  # all started and spinning when the moment comes
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATE_IN_CHILD, str(path), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outputs
    assert {out.strip() for out, _err in outputs} == {load_account_key(path).thumbprint}
    assert sorted(p.name for p in path.parent.iterdir()) == ["account.key"]


def test_a_temporary_file_left_by_a_crash_does_not_block_creation(tmp_path: Path) -> None:
    path = tmp_path / "account.key"
    _private_file(tmp_path / f".account.key.{os.getpid()}.tmp", b"-----BEGIN PRIV")
    load_account_key(path, create=True)
    assert path.exists()
