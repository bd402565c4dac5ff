"""The data directory: what ``server init`` creates, and where everything lives."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from acmefleet.ca.bundle import write_bundle
from acmefleet.ca.hierarchy import TRUST_LEVELS, create_hierarchy, load_authority
from acmefleet.ca.tls import issue_server_tls
from acmefleet.clock import Clock
from acmefleet.config import CONFIG_FILE, load_config, render_default_config
from acmefleet.console import tokens
from acmefleet.store.engine import SQLITE_FILE, Database, open_database, sqlite_url
from acmefleet.store.migrate import SchemaExists
from acmefleet.store.migrate import initialise as initialise_database

PASSPHRASE_ENV = "ACMEFLEET_CA_PASSPHRASE"  # noqa: S105 - a variable name
PASSPHRASE_FILE_ENV = "ACMEFLEET_CA_PASSPHRASE_FILE"  # noqa: S105
SERVER_CA_LEVEL = "private"
# What init moves from its staging directory into an existing empty data dir, besides
# config.toml (moved last: the mark of a complete directory).
_INIT_ENTRIES = (SQLITE_FILE, "ca", "ca-bundle.pem", "tls")


class DataDirError(RuntimeError):
    pass


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def ca(self) -> Path:
        return self.root / "ca"

    @property
    def ca_bundle(self) -> Path:
        return self.root / "ca-bundle.pem"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls" / "server.pem"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls" / "server.key"

    def open_database(self) -> Database:
        """The configured database (SQLite in this directory unless ``database_url`` is
        set), with the pool and timeouts of ``[database]``."""
        config = load_config(self.root)
        return open_database(config.database_url or sqlite_url(self.root), config.database)


@dataclass(frozen=True)
class Initialised:
    data: DataDir
    admin_token: str


def read_passphrase(passphrase_file: Path | None = None) -> bytes | None:
    """The CA key passphrase: a file (flag or env) wins over the environment variable."""
    path = passphrase_file or (
        Path(os.environ[PASSPHRASE_FILE_ENV]) if os.environ.get(PASSPHRASE_FILE_ENV) else None
    )
    if path is not None:
        try:
            value = path.read_bytes().strip()
        except OSError as exc:
            raise DataDirError(
                f"cannot read the CA passphrase file {path}: {exc.strerror}"
            ) from exc
        if not value:
            raise DataDirError(f"the CA passphrase file {path} is empty")
        return value
    env = os.environ.get(PASSPHRASE_ENV)
    return env.encode() if env else None


def tls_names(base_url: str, extra: tuple[str, ...]) -> list[str]:
    host = urlsplit(base_url).hostname or "localhost"
    return list(dict.fromkeys(["localhost", "127.0.0.1", "::1", host, *extra]))


def _staging_prefix(root: Path) -> str:
    return f".{root.name}.init-"


def _hold(directory: Path) -> int:
    """An exclusive ``flock`` on ``directory`` until the returned descriptor is closed.

    The kernel drops it when its holder dies, ``kill -9`` included: a staging directory
    nobody holds is one whose init was killed.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _abandoned(directory: Path) -> bool:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _clear_interrupted_init(root: Path) -> None:
    """Remove what an init killed before it finished left: its staging directory (inside
    an existing empty data dir, or beside a new one) and, when it was killed while moving
    its files in, the files it had moved (config.toml, moved last, is not there yet).

    None of it was ever usable: a server runs only on a directory with config.toml, and the
    first admin token had not been handed out. A staging directory still held belongs to
    an init that is running, and is left alone.
    """
    prefix = _staging_prefix(root)
    for place in (root, root.parent):
        if not place.is_dir():
            continue
        for staging in place.iterdir():
            if not staging.name.startswith(prefix) or staging.is_symlink():
                continue
            if not staging.is_dir() or not _abandoned(staging):
                continue
            if place == root and not (root / CONFIG_FILE).exists():
                for name in _INIT_ENTRIES:
                    moved = root / name
                    if moved.exists() and not (staging / name).exists():
                        if moved.is_dir() and not moved.is_symlink():
                            shutil.rmtree(moved)
                        else:
                            moved.unlink()
            shutil.rmtree(staging)


def initialise(
    root: Path,
    *,
    base_url: str,
    pki_base_url: str,
    listen: str,
    pki_listen: str,
    clock: Clock,
    passphrase: bytes | None,
    extra_tls_names: tuple[str, ...] = (),
    database_url: str | None = None,
) -> Initialised:
    """Create a complete data directory, or nothing: it is built aside and moved in place.

    Returns the directory and the first console admin token (its only appearance). What an
    earlier init killed half-way left is removed first (one init at a time per directory).
    ``database_url``: a PostgreSQL database to keep the state in instead of SQLite; it must
    hold no acmefleet schema yet (a further replica gets a copy of the first one's data
    directory, CA keys included, not an init of its own).
    """
    _clear_interrupted_init(root)
    if root.exists() and any(root.iterdir()):
        raise DataDirError(f"{root} already exists and is not empty; refusing to overwrite it")
    # An existing empty directory (say, made 0700 for a service user that owns nothing
    # else) is staged inside; otherwise beside it. Either way the result appears whole.
    inside = root.exists()
    if not inside:
        root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=_staging_prefix(root), dir=root if inside else root.parent)
    )
    held = _hold(staging)  # until the result is in place, or this process dies
    try:
        staging.chmod(0o700)
        (staging / CONFIG_FILE).write_text(
            render_default_config(
                base_url, pki_base_url, listen, pki_listen, extra_tls_names, database_url
            )
        )
        config = load_config(staging)
        staged = DataDir(staging)
        for level in TRUST_LEVELS:
            create_hierarchy(staged.ca, level, clock=clock, passphrase=passphrase)
        write_bundle(staged.ca, TRUST_LEVELS, staged.ca_bundle)
        staged.tls_cert.parent.mkdir(mode=0o700)
        issue_server_tls(
            load_authority(staged.ca, SERVER_CA_LEVEL, passphrase),
            tls_names(base_url, config.tls_names),
            staged.tls_cert,
            staged.tls_key,
            clock=clock,
        )
        database = open_database(config.database_url or sqlite_url(staging), config.database)
        try:
            admin_token, _ = initialise_database(
                database,
                lambda conn: tokens.create(
                    conn, name="initial-admin", role="admin", actor="server-init", now=clock.now()
                ),
            )
        except SchemaExists as exc:
            raise DataDirError(
                "the database already holds an acmefleet schema: a further replica needs "
                "a copy of the first one's data directory, not an init of its own"
            ) from exc
        finally:
            database.dispose()
        if inside:
            entries = sorted(staging.iterdir(), key=lambda p: p.name == CONFIG_FILE)
            for entry in entries:  # config.toml last: it marks a complete directory
                entry.rename(root / entry.name)
            staging.rmdir()
        else:
            staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(held)
    return Initialised(DataDir(root), admin_token)


def require_initialised(root: Path) -> DataDir:
    data = DataDir(root)
    if not data.config.exists():
        raise DataDirError(
            f"{root} is not an acmefleet data directory; run 'acmefleet server init'"
        )
    return data
