"""Run Debian's Knot DNS (``knotd``) on loopback: an authoritative server for test zones that
accepts RFC 2136 updates signed with a TSIG key.

The TSIG secret is in the configuration file (0600), never in a process argument: knotd reads
it from there, and the clients get it through their own 0600 files or environment.

Zones:

* ``example.org`` (and whatever ``records`` adds to it): updatable with the key;
* ``other.test``: a second zone, for CNAMEs that leave the first one;
* ``broken.test``: configured, but its zone file does not parse, so knotd answers SERVFAIL
  for every name in it;
* ``org``: empty, the parent of ``example.org``. acmefleet's resolvers are this knotd, and a
  CAA check (RFC 8659 §3) climbs from a name up to its TLD: here it finds no record at
  ``org``, as a recursive resolver would, instead of a refusal for a zone not served.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

from tests.support.procs import die_with_parent, free_ports, terminate_group

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
# A name pkilint takes for public (it refuses the reserved .test TLD in a public-dv
# certificate); the zone only ever lives in this knotd on loopback.
ZONE = "example.org"
OTHER_ZONE = "other.test"
BROKEN_ZONE = "broken.test"
TLD_ZONE = "org"
KEY_NAME = "acme-update"
ALGORITHM = "hmac-sha256"


def knot_available() -> bool:
    return shutil.which("knotd") is not None or Path(KNOTD).exists()


def _zone_text(origin: str, records: Iterable[str], ns_address: str = "127.0.0.1") -> str:
    lines = [
        f"$ORIGIN {origin}.",
        "$TTL 60",
        f"@ SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60",
        f"@ NS ns.{origin}.",
        f"ns A {ns_address}",
        *records,
    ]
    return "\n".join(lines) + "\n"


class KnotServer:
    """knotd on 127.0.0.1:<free port> with ``ZONE``, ``other.test`` and ``broken.test``.

    ``records`` are zone-file lines for ``ZONE`` (relative names allowed). ``zone``, ``host``
    and ``port`` put another zone on another address (the lab bridge, say): its NS record
    names ``host``, so with port 53 resolvers that check every authoritative server work.
    ``query_stats`` loads knotd's ``mod-stats`` counting queries by type, read with
    ``query_counts``: what proves that a validator really asked."""

    def __init__(
        self,
        workdir: Path,
        records: Iterable[str] = (),
        also_listen: Iterable[str] = (),
        *,
        zone: str = ZONE,
        host: str = "127.0.0.1",
        port: int | None = None,
        query_stats: bool = False,
    ) -> None:
        """``also_listen``: more addresses to answer on (same port), e.g. the host side of
        a test network namespace's veth pair."""
        self.workdir = workdir
        self.records = list(records)
        self.also_listen = list(also_listen)
        self.zone = zone
        self.host = host
        self.port = port if port is not None else free_ports(1)[0]
        self.query_stats = query_stats
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "knotd.log"

    def _write_config(self) -> Path:
        storage = self.workdir / "zones"
        storage.mkdir(parents=True, exist_ok=True)
        (self.workdir / "db").mkdir(exist_ok=True)
        (storage / f"{self.zone}.zone").write_text(_zone_text(self.zone, self.records, self.host))
        (storage / f"{OTHER_ZONE}.zone").write_text(_zone_text(OTHER_ZONE, []))
        (storage / f"{TLD_ZONE}.zone").write_text(_zone_text(TLD_ZONE, []))
        (storage / f"{BROKEN_ZONE}.zone").write_text(f"$ORIGIN {BROKEN_ZONE}.\nthis is no zone\n")
        config = self.workdir / "knot.conf"
        listen = ", ".join(f"{a}@{self.port}" for a in [self.host, *self.also_listen])
        text = f"""server:
    rundir: "{self.workdir}"
    listen: [{listen}]
    background-workers: 1
    tcp-workers: 1
    udp-workers: 1

log:
  - target: "{self.log_path}"
    any: info

database:
    storage: "{self.workdir / "db"}"

key:
  - id: {KEY_NAME}
    algorithm: {ALGORITHM}
    secret: {self.secret}

acl:
  - id: update
    key: {KEY_NAME}
    action: update
{self._stats_module()}
template:
  - id: default
    storage: "{storage}"
    file: "%s.zone"
    # Updates stay in the journal; the zone files are the test's, never rewritten.
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    semantic-checks: off
{"    global-module: mod-stats/types" if self.query_stats else ""}
zone:
  - domain: {self.zone}
    acl: update
  - domain: {OTHER_ZONE}
    acl: update
  - domain: {BROKEN_ZONE}
  - domain: {TLD_ZONE}
"""
        # The TSIG secret: created 0600 before it is written.
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(text)
        return config

    def _stats_module(self) -> str:
        if not self.query_stats:
            return ""
        # Only the per-type counters: the module's other counters cost CPU nobody reads.
        return """
mod-stats:
  - id: types
    request-protocol: off
    server-operation: off
    request-bytes: off
    response-bytes: off
    edns-presence: off
    flag-presence: off
    response-code: off
    query-type: on
"""

    def query_counts(self) -> dict[str, int]:
        """Queries answered so far by type (``{"TXT": 12, "A": 3}``); needs ``query_stats``.

        Read through knotc and knotd's control socket (in the run directory)."""
        done = subprocess.run(
            [KNOTC, "--config", str(self.workdir / "knot.conf"), "stats", "mod-stats"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"knotc stats failed: {done.stdout}{done.stderr}")
        counts: dict[str, int] = {}
        for match in re.finditer(r"query-type\[(\w+)\] = (\d+)", done.stdout):
            counts[match[1]] = counts.get(match[1], 0) + int(match[2])
        return counts

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self.proc = subprocess.Popen(
            [KNOTD, "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.with_suffix(".stderr").open("wb"),
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - no leaked knotd if Python dies
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"knotd exited: {self.log_text()}")
            try:
                if self.query(f"ns.{self.zone}", "A").rcode() == dns.rcode.NOERROR:
                    return self
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"knotd did not answer within 20 s: {self.log_text()}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            terminate_group(self.proc)
            self.proc = None

    def log_text(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.log_path,) if p.exists()]
        stderr = self.log_path.with_suffix(".stderr")
        if stderr.exists():
            parts.append(stderr.read_text(errors="replace"))
        return "\n".join(parts)

    # ------------------------------------------------------------------ clients' view

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        request = dns.message.make_query(name, rdtype)
        return dns.query.udp(request, self.host, port=self.port, timeout=2)

    def update(self, zone: str, *, replace: dict[str, tuple[str, list[str]]]) -> None:
        """RFC 2136 update signed with the TSIG key: ``{name: (rdtype, [rdata, ...])}``."""
        keyring = dns.tsigkeyring.from_text({KEY_NAME: self.secret})
        message = dns.update.UpdateMessage(
            zone, keyring=keyring, keyname=KEY_NAME, keyalgorithm=ALGORITHM
        )
        for name, (rdtype, values) in replace.items():
            message.delete(name, rdtype)
            for value in values:
                message.add(name, 60, rdtype, value)
        response = dns.query.tcp(message, self.host, port=self.port, timeout=5)
        assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())


def certbot_rfc2136_args(knot: KnotServer, ini: Path) -> list[str]:
    """certbot's ``dns-rfc2136`` authenticator flags, its credentials in ``ini`` (0600)."""
    ini.touch(mode=0o600)
    ini.chmod(0o600)
    ini.write_text(
        "dns_rfc2136_server = 127.0.0.1\n"
        f"dns_rfc2136_port = {knot.port}\n"
        f"dns_rfc2136_name = {KEY_NAME}\n"
        f"dns_rfc2136_secret = {knot.secret}\n"
        f"dns_rfc2136_algorithm = {ALGORITHM.upper()}\n"
    )
    return [
        "--authenticator",
        "dns-rfc2136",
        "--dns-rfc2136-credentials",
        str(ini),
        "--dns-rfc2136-propagation-seconds",
        "1",
    ]


class SilentResolver:
    """A UDP (and TCP) port that takes queries and never answers: a resolver that times out."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.udp.close()
