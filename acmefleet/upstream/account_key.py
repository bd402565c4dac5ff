"""The upstream account's private key: made once, kept 0600 by the server's user, reused.

The key is the account (RFC 8555 §7.3.1: a lost key is a lost account, and with an EAB
credential that was single use, one the operator must ask the CA for again). So it is
written the way nothing half-written can take its place: into a temporary file created
0600, flushed to disk, then linked to its name (``link`` fails if the name exists, so of two
processes creating it at once one wins and the other loads the winner's key), then the
directory flushed. It is read only when the file is a regular file (not a link) owned by
this user and readable by nobody else; anything else is an ``AccountKeyError`` naming the
path, never the key.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acmefleet.upstream.errors import AccountKeyError
from acmefleet.upstream.signing import AccountPrivateKey, AccountSigner

MAX_KEY_FILE = 64 * 1024
MIN_RSA_BITS = 2048


def read_private_file(path: Path, limit: int = MAX_KEY_FILE) -> bytes:
    """The bytes of a secret file: a regular file (not a link), this user's, mode 0600 or
    stricter, at most ``limit`` bytes; else ``AccountKeyError`` naming the path."""
    try:
        # Non-blocking: a FIFO put there must not hang the server's start on its open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise AccountKeyError(f"{path}: {exc.strerror} (a symbolic link is refused)") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AccountKeyError(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise AccountKeyError(f"{path} belongs to uid {info.st_uid}, not to this user")
        if info.st_mode & 0o077:
            raise AccountKeyError(
                f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
                "chmod 600 it"
            )
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise AccountKeyError(f"{path} is larger than {limit} bytes")
    return data


def _parse(path: Path, data: bytes) -> AccountPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted: the server runs unattended and has no passphrase
        raise AccountKeyError(f"{path} is encrypted; the server needs it unencrypted") from exc
    except ValueError as exc:
        raise AccountKeyError(f"{path} is not a PEM private key") from exc
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
        return key
    raise AccountKeyError(f"{path}: an account key must be ECDSA P-256 or RSA of 2048+ bits")


def _create(path: Path) -> None:
    """Write a new P-256 key to ``path`` unless a key is there already (then keep that)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # mkstemp: created 0600 with O_EXCL under a name no other thread or process uses.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_account_key(path: Path, *, create: bool = False) -> AccountSigner:
    """The signer for the key at ``path``; with ``create``, a new key if there is none."""
    if create and not os.path.lexists(path):
        try:
            _create(path)
        except OSError as exc:
            raise AccountKeyError(f"cannot create {path}: {exc.strerror}") from exc
    return AccountSigner(_parse(path, read_private_file(path)))
