"""Run Debian's PostgreSQL for the tests: a private cluster on a loopback port.

The cluster is made with ``initdb`` in a temporary directory owned by the ``postgres`` system
user (the server refuses to run as root), listens on 127.0.0.1:<free port> and on a Unix
socket in that directory, and asks for a password (scram-sha-256) on TCP, as a real
deployment does. The password is written to a libpq password file (0600) and reaches
acmefleet through the URL's ``passfile`` parameter: never a process argument, never a URL
that could end in a log. The Unix socket (its directory is 0700) trusts whoever reaches it:
the tests' own administration goes over TCP with the same password file.

Each test database is a copy of a migrated template (``CREATE DATABASE … TEMPLATE``), so a
test starts from the schema the server builds without running the migrations again.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg

from tests.support.procs import die_with_parent, free_ports

SUPERUSER = "acmefleet"
SYSTEM_USER = "postgres"


def _bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries (15 on Debian 12, 17 on Debian 13)."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name),
    )
    return versions[-1] if versions else None


def postgres_available() -> bool:
    if _bin_dir() is None:
        return False
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        return False
    return os.geteuid() == 0


class PostgresServer:
    """A throwaway cluster; ``url(name)`` is a SQLAlchemy URL for one of its databases.

    ``workdir`` must be reachable by the ``postgres`` user (pytest's own temporary
    directories are not: they are 0700 root's); by default a fresh one under /tmp."""

    def __init__(self, workdir: Path | None = None) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = bin_dir
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="acmefleet-pg-"))
        self.data = self.workdir / "data"
        self.port = free_ports(1)[0]
        self.password = secrets.token_urlsafe(24)
        self.passfile = self.workdir / "pgpass"
        self.proc: subprocess.Popen[bytes] | None = None
        self._owner = pwd.getpwnam(SYSTEM_USER)

    def url(self, database: str = "postgres") -> str:
        return (
            f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"
            f"?passfile={self.passfile}&connect_timeout=5"
        )

    def _as_owner(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            cwd=self.workdir,
            user=self._owner.pw_uid,
            group=self._owner.pw_gid,
            extra_groups=[],
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")
        return done

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chown(self.workdir, self._owner.pw_uid, self._owner.pw_gid)
        self.workdir.chmod(0o700)
        secret = self.workdir / "initdb-password"
        fd = os.open(secret, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.password + "\n")
        os.chown(secret, self._owner.pw_uid, self._owner.pw_gid)
        self._as_owner(
            str(self.bin / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(secret),
            "--auth-local=trust",  # the socket's directory is 0700
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-instructions",
        )
        secret.unlink()
        fd = os.open(self.passfile, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"127.0.0.1:{self.port}:*:{SUPERUSER}:{self.password}\n")
        # fsync off: a test cluster need not survive a power cut, and the suite runs faster.
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.workdir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        self._launch()
        return self

    def _launch(self) -> None:
        log = (self.workdir / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data)],
            cwd=self.workdir,
            user=self._owner.pw_uid,
            group=self._owner.pw_gid,
            extra_groups=[],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - spawned from the main thread
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}): {self.log_tail()}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        raise TimeoutError(f"postgres not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.workdir / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run ``sql`` as the superuser outside a transaction (CREATE DATABASE needs that)."""
        conninfo = self.url(database).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(sql.encode())
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str, template: str | None = None) -> str:
        clause = f" TEMPLATE {template}" if template else ""
        self.execute(f'CREATE DATABASE "{name}"{clause};')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')

    def restart(self, *, down_for: float = 0.0) -> None:
        """Stop the server (fast shutdown: sessions are cut), wait, start it again."""
        self.stop()
        time.sleep(down_for)
        self._launch()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # SIGINT is PostgreSQL's "fast" shutdown: roll back and disconnect every session.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
