"""Run Debian's pebble ACME test server on loopback for side-by-side tests."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.support.procs import die_with_parent, free_ports, terminate_group, wait_for_url
from tests.support.tls_certs import LOOPBACK_NAMES, make_serving_cert

PEBBLE_BINARY = "pebble"

#: Environment for fast, deterministic runs (see pebble's README).  ``validate=True`` drops
#: PEBBLE_VA_ALWAYS_VALID and keeps the other two.
FAST_ENV = {
    "PEBBLE_VA_NOSLEEP": "1",  # no random 0-15 s sleep before validation
    "PEBBLE_VA_ALWAYS_VALID": "1",  # challenges succeed without contacting anything
    "PEBBLE_WFE_NONCEREJECT": "0",  # default rejects 5% of good nonces with badNonce
}


def new_eab_key(size: int = 32) -> str:
    """A random HMAC key as unpadded base64url (pebble rejects padding)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(size)).rstrip(b"=").decode()


def make_eab_keys(count: int, prefix: str = "kid") -> dict[str, str]:
    """``count`` fresh EAB key ids mapped to HMAC keys."""
    return {f"{prefix}-{index}": new_eab_key() for index in range(1, count + 1)}


def pebble_available() -> bool:
    """True when the pebble binary is on PATH."""
    return shutil.which(PEBBLE_BINARY) is not None


class PebbleServer:
    """A pebble process with its own TLS CA, config and loopback ports.

    Use as a context manager; ``directory_url``, ``ca_bundle`` and ``pid`` are
    valid once started.  ``eab_keys`` (kid -> unpadded base64url HMAC key)
    makes External Account Binding required unless ``eab_required`` says otherwise.
    ``validate`` makes pebble's VA really validate (http-01 to ``httpPort``, set it through
    ``extra_config``); ``dns_server`` ("ADDRESS:PORT") is what it resolves names and TXT
    records through (``-dnsserver``) instead of the system's resolver.
    """

    def __init__(
        self,
        workdir: Path,
        eab_keys: dict[str, str] | None = None,
        *,
        eab_required: bool | None = None,
        env: dict[str, str] | None = None,
        extra_config: dict[str, Any] | None = None,
        startup_timeout: float = 20.0,
        host: str = "127.0.0.1",
        validate: bool = False,
        dns_server: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.eab_keys = dict(eab_keys or {})
        self.eab_required = bool(self.eab_keys) if eab_required is None else eab_required
        self.env = {**FAST_ENV, **(env or {})}
        self.validate = validate
        if validate:
            self.env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        self.dns_server = dns_server
        self.extra_config = extra_config or {}
        self.startup_timeout = startup_timeout
        self.host = host
        self.port = 0
        self.management_port = 0
        self.config_path = self.workdir / "pebble-config.json"
        self.log_path = self.workdir / "pebble.log"
        names = LOOPBACK_NAMES if host in LOOPBACK_NAMES else (*LOOPBACK_NAMES, host)
        tls = make_serving_cert(self.workdir / "tls", names, prefix="pebble")
        self.ca_bundle = tls.ca_bundle
        self._tls = tls
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._eab_cursor = 0

    @property
    def directory_url(self) -> str:
        """The ACME directory URL (pebble serves it at ``/dir``)."""
        return f"https://{self.host}:{self.port}/dir"

    @property
    def management_url(self) -> str:
        """Base URL of pebble's management API (``/roots/0``, ``/cert-status-by-serial/``)."""
        return f"https://{self.host}:{self.management_port}"

    @property
    def pid(self) -> int:
        """PID of the running pebble process (also its process group id)."""
        if self._proc is None:
            raise RuntimeError("pebble is not running")
        return self._proc.pid

    def next_eab(self) -> tuple[str, str]:
        """Round-robin (kid, hmac_key) from ``eab_keys`` (pebble lets a kid bind many accounts)."""
        if not self.eab_keys:
            raise RuntimeError("pebble was started without EAB keys")
        kids = sorted(self.eab_keys)
        kid = kids[self._eab_cursor % len(kids)]
        self._eab_cursor += 1
        return kid, self.eab_keys[kid]

    def config(self) -> dict[str, Any]:
        """The JSON document written to ``-config``."""
        http_port, tls_port = free_ports(2)
        body: dict[str, Any] = {
            "listenAddress": f"{self.host}:{self.port}",
            "managementListenAddress": f"{self.host}:{self.management_port}",
            "certificate": str(self._tls.cert),
            "privateKey": str(self._tls.key),
            "httpPort": http_port,  # unused with PEBBLE_VA_ALWAYS_VALID: overridden to validate
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": self.eab_required,
            "externalAccountMACKeys": self.eab_keys,
        }
        body.update(self.extra_config)
        return {"pebble": body}

    def start(self, attempts: int = 3) -> Self:
        """Start pebble and wait for its directory; retries on port races."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                return self
            except (RuntimeError, TimeoutError):
                self.stop()
                if attempt == attempts:
                    raise RuntimeError(f"pebble failed to start:\n{self.log_tail()}") from None
        return self

    def restart(self) -> None:
        """Stop pebble and start it again on the same ports. Its state (accounts, orders)
        was in memory: the new process knows none of it, as a CA that lost its database."""
        self.stop()
        self._start_once(keep_ports=True)

    def _start_once(self, *, keep_ports: bool = False) -> None:
        if not keep_ports:
            self.port, self.management_port = free_ports(2)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self._log = self.log_path.open("ab")
        command = [PEBBLE_BINARY, "-config", str(self.config_path), "-strict=false"]
        if self.dns_server:
            command += ["-dnsserver", self.dns_server]
        env = {**os.environ, **self.env}
        if self.validate:  # not even inherited from the caller's environment
            env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - no leaked pebble if Python dies
        )
        wait_for_url(self.directory_url, self.ca_bundle, self._proc, self.startup_timeout)

    def stop(self) -> None:
        """Terminate pebble's process group."""
        if self._proc is not None:
            terminate_group(self._proc)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        """Last ``lines`` lines of pebble's output."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
