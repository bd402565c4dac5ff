"""Drive Debian's real ACME clients (certbot, lego) against a test server; check what they get.

Everything stays on loopback: the clients only ever see the test server's directory URL,
http-01 is answered by the clients' own listeners or by :class:`WebrootServer` on 127.0.0.1,
and any request to a non-loopback host would hit a dead proxy (see ``_loopback_env``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store
from sqlalchemy import bindparam, text

from tests.support.pkilint import lint_findings
from tests.support.procs import terminate_group

if TYPE_CHECKING:
    from tests.support.acmefleet_server import AcmefleetServer


CLIENT_TIMEOUT = 120.0
CERTBOT = shutil.which("certbot") or "/usr/bin/certbot"
LEGO = shutil.which("lego") or "/usr/bin/lego"
CONTACT = "ops@example.com"
DEAD_PROXY = "http://127.0.0.1:9"
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")


# ------------------------------------------------------------------ running the clients


@dataclass
class ClientRun:
    """A finished client run: command, exit status and the captured output."""

    args: list[str]
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    log: str = ""  # the client's own log file, when it writes one (certbot)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        status = "timed out" if self.returncode is None else f"exited {self.returncode}"
        text = (
            f"$ {' '.join(self.args)}\n[{status}]\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )
        if self.log:
            text += f"\n--- log (last 6000 chars)\n{self.log[-6000:]}"
        return text

    def check(self) -> ClientRun:
        """Fail the test with the full transcript unless the client exited 0."""
        assert self.ok, self.describe()
        return self


def _loopback_env(base_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment, with a safety net against traffic leaving the machine.

    Loopback names bypass the proxy; anything else would go to a proxy on the discard port
    of 127.0.0.1, where nothing listens, and fail at once instead of reaching the network.
    """
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[var] = env[var.lower()] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
    env.update(HOME=str(base_dir), LC_ALL="C.UTF-8", **extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float) -> ClientRun:
    # A session of its own, so a hung client (and anything it spawned) can be killed whole.
    # (No preexec_fn: a WebrootServer thread may be running while we fork.)
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        terminate_group(proc, timeout=5)
        out, err = proc.communicate()
        returncode = None
    return ClientRun(args, returncode, out.decode(errors="replace"), err.decode(errors="replace"))


@dataclass(frozen=True)
class CertbotDirs:
    base: Path

    @property
    def config(self) -> Path:
        return self.base / "config"

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    def live(self, cert_name: str) -> Path:
        return self.config / "live" / cert_name

    def fullchain(self, cert_name: str) -> Path:
        return self.live(cert_name) / "fullchain.pem"

    def args(self) -> list[str]:
        return [
            "--config-dir",
            str(self.config),
            "--work-dir",
            str(self.work),
            "--logs-dir",
            str(self.logs),
        ]


def run_certbot(
    args: Sequence[str], *, ca_bundle: Path, base_dir: Path, timeout: float = CLIENT_TIMEOUT
) -> ClientRun:
    """``certbot ARGS`` with its config/work/logs dirs under ``base_dir``, trusting ``ca_bundle``.

    Adds ``--non-interactive`` and the directory flags; the caller gives the subcommand and
    everything else (``--server``, EAB, authenticator...).
    """
    dirs = CertbotDirs(base_dir)
    command = [CERTBOT, *args, *dirs.args(), "--non-interactive", "--max-log-backups", "0"]
    run = _run(command, _loopback_env(base_dir, {"REQUESTS_CA_BUNDLE": str(ca_bundle)}), timeout)
    log = dirs.logs / "letsencrypt.log"
    if log.exists():
        run.log = log.read_text(errors="replace")
        # Each run starts a fresh log; keep the old ones for post-mortems.
        log.rename(dirs.logs / f"letsencrypt-{datetime.now(UTC):%H%M%S%f}.log")
    return run


def certbot_register_args(directory: str, eab: tuple[str, str]) -> list[str]:
    kid, hmac_key = eab
    return [
        "--server",
        directory,
        "--agree-tos",
        "-m",
        CONTACT,
        "--no-eff-email",
        "--eab-kid",
        kid,
        "--eab-hmac-key",
        hmac_key,
    ]


@dataclass(frozen=True)
class LegoPaths:
    base: Path

    def certificate(self, name: str) -> Path:
        return self.base / "certificates" / f"{name}.crt"

    def issuer(self, name: str) -> Path:
        return self.base / "certificates" / f"{name}.issuer.crt"


def run_lego(
    args: Sequence[str],
    *,
    ca_bundle: Path,
    base_dir: Path,
    directory: str,
    eab: tuple[str, str] | None = None,
    timeout: float = CLIENT_TIMEOUT,
    env: dict[str, str] | None = None,
) -> ClientRun:
    """``lego --server DIRECTORY --path BASE_DIR [--eab ...] ARGS`` trusting ``ca_bundle``
    (``env``: more environment, such as a DNS provider's settings).

    ``args`` carries the domains, the solver flags and the subcommand (last, with its own flags),
    e.g. ``["--http", "--http.port", "127.0.0.1:8080", "-d", "a.example", "run"]``.
    """
    command = [
        LEGO,
        "--server",
        directory,
        "--path",
        str(base_dir),
        "--accept-tos",
        "--email",
        CONTACT,
    ]
    if eab is not None:
        command += ["--eab", "--kid", eab[0], "--hmac", eab[1]]
    command += list(args)
    extra = {"LEGO_CA_CERTIFICATES": str(ca_bundle), **(env or {})}
    return _run(command, _loopback_env(base_dir, extra), timeout)


# ------------------------------------------------------------------ webroot HTTP server


class _RecordingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, requests: list[str]) -> None:
        self.requests = requests
        super().__init__(address, partial(_RecordingHandler, directory=str(root)))


class _RecordingHandler(SimpleHTTPRequestHandler):
    server: _RecordingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        # Called once per request: "GET /path HTTP/1.1" status size.
        self.server.requests.append(format % args)


@dataclass
class WebrootServer:
    """Serve ``root`` over plain HTTP on ``host:port`` from a thread (a certbot ``-w`` target).

    ``requests`` records each request line with its status, so a test can prove the validator
    came by and got the token.
    """

    root: Path
    port: int
    host: str = "127.0.0.1"
    requests: list[str] = field(default_factory=list)
    _httpd: _RecordingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> WebrootServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._httpd = _RecordingHTTPServer((self.host, self.port), self.root, self.requests)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


# ------------------------------------------------------------------ certificates


def read_chain(path: Path) -> list[x509.Certificate]:
    """The certificates of a PEM file, leaf first."""
    chain = x509.load_pem_x509_certificates(path.read_bytes())
    assert chain, f"{path} holds no certificate"
    return chain


def san_names(cert: x509.Certificate) -> set[str]:
    """Every DNS name and IP address of the subjectAltName extension, as text."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    }


def common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def serial_hex(cert: x509.Certificate) -> str:
    """The serial as the server stores it (``certificates.serial_hex``: lower-case, no padding)."""
    return format(cert.serial_number, "x")


def load_roots(ca_bundle: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(ca_bundle.read_bytes())


def verify_chain(
    chain: Sequence[x509.Certificate], ca_bundle: Path, name: str
) -> list[x509.Certificate]:
    """Build a path from ``chain[0]`` to a root of ``ca_bundle`` as a TLS server for ``name``.

    ``name`` is a DNS name or an IP address. Returns the path (leaf ... root); raises
    ``cryptography.x509.verification.VerificationError`` on failure.
    """
    return (
        PolicyBuilder()
        .store(Store(load_roots(ca_bundle)))
        .time(datetime.now(UTC))
        .build_server_verifier(subject_of(name))
        .verify(chain[0], list(chain[1:]))
    )


def subject_of(name: str) -> x509.DNSName | x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def is_server_auth(cert: x509.Certificate) -> bool:
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    return ExtendedKeyUsageOID.SERVER_AUTH in eku


def fetch_crl(pki_port: int, level: str) -> x509.CertificateRevocationList:
    """The CRL the server publishes for CA ``level`` (DER over plain HTTP on loopback)."""
    url = f"http://127.0.0.1:{pki_port}/pki/{level}/crl"
    response = httpx.get(url, timeout=10, trust_env=False)
    assert response.status_code == 200, (url, response.status_code, response.text[:500])
    return x509.load_der_x509_crl(response.content)


def crl_serials(crl: x509.CertificateRevocationList) -> set[int]:
    return {entry.serial_number for entry in crl}


# ------------------------------------------------------------------ what the server recorded

LEVEL_WORD = {"private": "Private", "public": "Public"}


def certificate_row(server: AcmefleetServer, serial: str) -> dict[str, Any]:
    """The server's ``certificates`` row for a serial (as stored: lower-case hex)."""
    with server.db() as database, database.read() as conn:
        row = (
            conn.execute(
                text(
                    "SELECT id, account_id, endpoint, ca_level, names, revoked_at, "
                    "revocation_reason FROM certificates WHERE serial_hex = :serial"
                ),
                {"serial": serial},
            )
            .mappings()
            .first()
        )
    assert row is not None, f"no certificates row for serial {serial}"
    return dict(row)


def eab_row(server: AcmefleetServer, kid: str) -> dict[str, Any]:
    with server.db() as database, database.read() as conn:
        row = (
            conn.execute(
                text(
                    "SELECT e.hmac_key, e.bound_at, e.account_id, e.endpoint, a.eab_kid, "
                    "a.endpoint AS account_endpoint FROM eab_credentials e "
                    "LEFT JOIN accounts a ON a.id = e.account_id WHERE e.kid = :kid"
                ),
                {"kid": kid},
            )
            .mappings()
            .first()
        )
    assert row is not None, f"no eab_credentials row for kid {kid}"
    return dict(row)


def challenges_for(server: AcmefleetServer, names: Sequence[str]) -> list[dict[str, Any]]:
    """Every authorization of these identifiers, with its challenge (if any) joined in."""
    query = text(
        "SELECT z.identifier_value AS name, z.status AS authz_status, c.type, "
        "c.status AS challenge_status, c.validated_at "
        "FROM authorizations z LEFT JOIN challenges c ON c.authz_id = z.id "
        "WHERE z.identifier_value IN :names"
    ).bindparams(bindparam("names", expanding=True))
    with server.db() as database, database.read() as conn:
        rows = conn.execute(query, {"names": list(names)}).mappings().all()
    return [dict(r) for r in rows]


def check_issued(
    server: AcmefleetServer,
    pem: bytes,
    names: Sequence[str],
    *,
    level: str,
    context: str = "",
) -> x509.Certificate:
    """Everything a freshly issued chain must satisfy; returns the leaf.

    Leaf + issuing intermediate; exactly ``names``; a TLS server path to a root of
    ``server.ca_bundle`` for every name, through the ``level`` (Private/Public) CA; no
    pkilint ERROR; and the server's ``certificates`` row agrees and is not revoked.
    """
    word = LEVEL_WORD[level]
    chain = x509.load_pem_x509_certificates(pem)
    leaf = chain[0]
    assert len(chain) == 2, f"want leaf + issuing CA, got {[c.subject for c in chain]}\n{context}"
    assert san_names(leaf) == set(names), (san_names(leaf), names, context)
    assert leaf.issuer == chain[1].subject
    assert word in common_name(leaf.issuer), (leaf.issuer.rfc4514_string(), level)
    assert "Issuing" in common_name(chain[1].subject)
    assert is_server_auth(leaf)
    for name in names:
        # A wildcard is verified through a name it covers (a verifier takes no "*").
        path = verify_chain(chain, server.ca_bundle, name.replace("*", "covered-by-wildcard", 1))
        assert common_name(path[-1].subject) == f"acmefleet {word} Root CA", path[-1].subject
    findings = lint_findings(pem, "public" if level == "public" else "private")
    assert findings == [], f"pkilint ({level}): {findings}"
    row = certificate_row(server, serial_hex(leaf))
    assert row["ca_level"] == level and row["endpoint"] == level, row
    assert sorted(json.loads(row["names"])) == sorted(names), row
    assert row["revoked_at"] is None, row
    return leaf


def check_eab_bound(server: AcmefleetServer, kid: str, account_id: str, endpoint: str) -> None:
    """The credential is spent: HMAC erased, bound to the account that got the certificate."""
    assert server.count("eab_credentials", kid=kid, hmac_key=None) == 1
    row = eab_row(server, kid)
    assert row["hmac_key"] is None and row["bound_at"] is not None, row
    assert row["account_id"] == account_id, row
    assert row["eab_kid"] == kid and row["account_endpoint"] == endpoint == row["endpoint"], row


def check_revoked(
    server: AcmefleetServer, leaf: x509.Certificate, *, level: str, reason: int
) -> None:
    """The row carries ``revoked_at``/``reason``; the level's CRL (signed by the level's
    issuing CA) lists the serial, with the reason code unless it is 0 (unspecified)."""
    row = certificate_row(server, serial_hex(leaf))
    assert row["revoked_at"] is not None, row
    assert (row["revocation_reason"] or 0) == reason, row
    crl = fetch_crl(server.pki_port, level)
    entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert entry is not None, (
        f"serial {serial_hex(leaf)} missing from the {level} CRL "
        f"(listed: {sorted(map(hex, crl_serials(crl)))}, thisUpdate {crl.last_update_utc})"
    )
    issuer = x509.load_pem_x509_certificate(
        (server.data_dir / "ca" / level / "issuer.pem").read_bytes()
    )
    assert crl.issuer == issuer.subject and LEVEL_WORD[level] in common_name(crl.issuer)
    assert crl.is_signature_valid(issuer.public_key()), "CRL signature"  # type: ignore[arg-type]
    if reason:
        code = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        assert code == _REASONS[reason], (code, reason)


_REASONS = {
    1: x509.ReasonFlags.key_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    9: x509.ReasonFlags.privilege_withdrawn,
}
