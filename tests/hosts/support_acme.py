"""An acmefleet server on the controller for the lab hosts (role tests and Molecule).

The server listens on the lab bridge (10.77.0.1, the hosts' ``controller``) on free ports,
keeps everything in one state directory, and validates http-01 by connecting to the lab
addresses it is given (``--host NAME=ADDRESS``).

Python::

    with running_acme(state_dir, {"web30.lab.example": "10.77.0.30"}) as acme:
        eab = acme.mint("public")

Command line (Molecule's prepare/destroy call it with ``delegate_to: localhost``)::

    python -m tests.hosts.support_acme start --state-dir D --host web30.lab.example=10.77.0.30
    python -m tests.hosts.support_acme mint --state-dir D --endpoint public --out D/eab.json
    python -m tests.hosts.support_acme accounts --state-dir D
    python -m tests.hosts.support_acme stop --state-dir D

``mint --out FILE`` writes the credential (with the HMAC key) to FILE, mode 0600, and prints
it without the HMAC key. Every HMAC key minted is also appended to ``D/minted-secrets``
(0600) so tests can look for it in logs.

``scenario_run`` runs a role's Molecule scenario for ``tests/hosts/test_role_*.py`` and keeps
what they check afterwards (output, minted HMAC keys, server log, the hosts' logs).

The base URL is ``https://10.77.0.1:PORT``, not ``https://controller:PORT``: ``acmefleet
server init`` refuses a single-label host name for its own TLS certificate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GATEWAY = "10.77.0.1"  # the controller on the lab bridge (acmefleet.lab.network.GATEWAY)
ORG = "lab"
DOMAIN = "lab.example"
PKI_HOST = "pki.example.com"
STATE_FILE = "server.json"
SECRETS_FILE = "minted-secrets"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def acmefleet_cli() -> list[str]:
    """The ``acmefleet`` console script beside the running Python (``ACMEFLEET_CLI`` overrides)."""
    override = os.environ.get("ACMEFLEET_CLI")
    if override:
        return override.split()
    return [str(Path(sys.executable).with_name("acmefleet"))]


def run_cli(*args: str) -> str:
    done = subprocess.run(
        [*acmefleet_cli(), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"acmefleet {args[0]} {args[1]} failed ({done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a 0600 file renamed into place."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def append_private(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(line + "\n")


def configure(
    config: Path,
    hosts: Mapping[str, str],
    dns_resolvers: Sequence[str] = (),
    authorization_reuse_days: float | None = None,
) -> None:
    """http-01 on port 80 of the lab addresses (private addresses allowed, static answers, no
    CAA); dns-01 through ``dns_resolvers`` (ADDRESS:PORT) when given;
    ``authorization_reuse_days``: how long a valid authorization is reused for the account's
    next orders (0: every order validates anew)."""
    text = config.read_text()
    if authorization_reuse_days is not None:
        text, reuse = re.subn(
            r"^authorization_reuse_days = \d+$",
            f"authorization_reuse_days = {authorization_reuse_days}",
            text,
            flags=re.M,
        )
        if reuse != 1:
            raise RuntimeError(f"unexpected layout of {config}; cannot set the reuse period")
    if dns_resolvers:
        text, resolvers = re.subn(
            r"^dns_resolvers = \[\]$",
            "dns_resolvers = " + json.dumps(list(dns_resolvers)),
            text,
            flags=re.M,
        )
        if resolvers != 1:
            raise RuntimeError(f"unexpected layout of {config}; cannot set dns_resolvers")
    text = re.sub(r"^http01_port = \d+", "http01_port = 80", text, flags=re.M)
    # The lab's names live only in static answers (and, for dns-01, one test zone whose
    # parents no resolver here serves): a CAA walk would fail, so CAA is off, as in the lab.
    text, caa = re.subn(r"^check_caa = true$", "check_caa = false", text, flags=re.M)
    text, allowed = re.subn(
        r"^allow_private_addresses = false", "allow_private_addresses = true", text, flags=re.M
    )
    mapping = "".join(f"{json.dumps(name)} = {json.dumps(addr)}\n" for name, addr in hosts.items())
    text, mapped = re.subn(
        r"^\[validation\.hosts\]\n", lambda m: m.group(0) + mapping, text, flags=re.M
    )
    if allowed != 1 or mapped != 1 or caa != 1:
        raise RuntimeError(f"unexpected layout of {config}; cannot set the validation options")
    config.write_text(text)


@dataclass
class LabAcme:
    """A running (or recorded) acmefleet server for the lab."""

    state_dir: str
    host: str
    port: int
    pki_port: int
    pid: int

    @property
    def root(self) -> Path:
        return Path(self.state_dir)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ca_bundle(self) -> Path:
        return self.data_dir / "ca-bundle.pem"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def secrets_path(self) -> Path:
        return self.root / SECRETS_FILE

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def directory(self, endpoint: str) -> str:
        return f"{self.base_url}/acme/{endpoint}/directory"

    def describe(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "data_dir": str(self.data_dir),
            "ca_bundle": str(self.ca_bundle),
            "log": str(self.log_path),
            "directories": {e: self.directory(e) for e in ("private", "public")},
        }

    @classmethod
    def load(cls, state_dir: Path) -> LabAcme | None:
        path = state_dir / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        (self.root / STATE_FILE).write_text(json.dumps(asdict(self)) + "\n")

    def mint(self, endpoint: str, org: str = ORG) -> dict[str, str]:
        """A fresh single-use EAB credential (kid, hmac_key, directory, ca_bundle, expires)."""
        out = run_cli(
            "admin",
            "eab",
            "create",
            "--org",
            org,
            "--endpoint",
            endpoint,
            "--json",
            "--data-dir",
            str(self.data_dir),
        )
        minted: dict[str, str] = json.loads(out)
        append_private(self.secrets_path, minted["hmac_key"])
        return minted

    def minted_secrets(self) -> list[str]:
        if not self.secrets_path.exists():
            return []
        return [s for s in self.secrets_path.read_text().split() if s]

    def accounts(self) -> int:
        """How many ACME accounts the server holds."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "acmefleet.db")) as conn:
            return int(conn.execute("SELECT count(*) FROM accounts").fetchone()[0])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        """The recorded pid is still this server (not a recycled pid)."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.data_dir).encode() in cmdline


def _wait_ready(server: LabAcme, proc: subprocess.Popen[bytes]) -> None:
    context = ssl.create_default_context(cafile=str(server.ca_bundle))
    deadline = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"acmefleet exited with status {proc.returncode} before it was ready:\n"
                f"{server.log_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(
                server.directory("private"), context=context, timeout=2
            ) as answer:
                if answer.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"acmefleet not ready after {READY_TIMEOUT:.0f} s: {last!r}")


def start(
    state_dir: Path,
    hosts: Mapping[str, str],
    *,
    listen_host: str = GATEWAY,
    org: str = ORG,
    domains: Sequence[str] = (DOMAIN,),
    dns_resolvers: Sequence[str] = (),
    authorization_reuse_days: float | None = None,
    extra_config: str = "",
    pki_host: str = PKI_HOST,
) -> LabAcme:
    """Initialise a data directory under ``state_dir`` and start the server in the background.

    ``listen_host`` must exist on this machine: the lab bridge is there once a host is up.
    ``extra_config``: TOML appended to the configuration (more endpoints, upstream CAs).
    ``pki_host``: the host of ``pki_base_url`` (127.0.0.1: the controller fetches what the
    certificates point at, OCSP included, as ``acmefleet status`` does).
    """
    state_dir = state_dir.resolve()
    existing = LabAcme.load(state_dir)
    if existing is not None and existing.alive():
        raise RuntimeError(f"an acmefleet server from {state_dir} is running (pid {existing.pid})")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    port, pki_port = free_port(listen_host), free_port("127.0.0.1")
    data_dir = state_dir / "data"
    if data_dir.exists():
        raise RuntimeError(f"{data_dir} exists: stop the previous server first")
    token_file = state_dir / "admin-token"
    token_file.unlink(missing_ok=True)
    run_cli(
        "server",
        "init",
        "--data-dir",
        str(data_dir),
        "--base-url",
        f"https://{listen_host}:{port}",
        "--pki-base-url",
        f"http://{pki_host}:{pki_port}",
        "--listen",
        f"{listen_host}:{port}",
        "--pki-listen",
        f"127.0.0.1:{pki_port}",
        "--admin-token-file",
        str(token_file),
    )
    configure(data_dir / "config.toml", hosts, dns_resolvers, authorization_reuse_days)
    if extra_config:
        with (data_dir / "config.toml").open("a") as config:
            config.write("\n" + extra_config)
    run_cli("admin", "org", "create", org, "--data-dir", str(data_dir))
    for domain in domains:
        run_cli("admin", "domain", "add", org, domain, "--data-dir", str(data_dir))
    server = LabAcme(str(state_dir), listen_host, port, pki_port, pid=0)
    with server.log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                *acmefleet_cli(),
                "server",
                "run",
                "--data-dir",
                str(data_dir),
                "--log-level",
                "debug",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server.pid = proc.pid
    server.save()
    try:
        _wait_ready(server, proc)
    except BaseException:
        stop(state_dir)
        raise
    return server


def stop(state_dir: Path, *, remove_data: bool = True) -> bool:
    """Stop the server recorded in ``state_dir`` (if any); True if one was running."""
    server = LabAcme.load(state_dir.resolve())
    if server is None:
        return False
    was_running = server.alive()
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while server.alive() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(server.pid, os.WNOHANG)
            time.sleep(0.1)
        if server.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
    if remove_data:
        shutil.rmtree(server.data_dir, ignore_errors=True)
        (server.root / STATE_FILE).unlink()
        (server.root / "admin-token").unlink(missing_ok=True)
    return was_running


@contextlib.contextmanager
def running_acme(state_dir: Path, hosts: Mapping[str, str], **kwargs: Any) -> Iterator[LabAcme]:
    """A started server, stopped (and its data removed) on exit; the log is kept."""
    server = start(state_dir, hosts, **kwargs)
    try:
        yield server
    finally:
        stop(state_dir)


def _host_pair(text: str) -> tuple[str, str]:
    name, sep, address = text.partition("=")
    if not sep or not name or not address:
        raise argparse.ArgumentTypeError(f"expected NAME=ADDRESS, not {text!r}")
    return name, address


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.hosts.support_acme", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p_start = commands.add_parser("start", help="init and start a server; print it as JSON")
    p_start.add_argument(
        "--host",
        action="append",
        type=_host_pair,
        default=[],
        metavar="NAME=ADDRESS",
        help="http-01 answer for NAME (repeatable)",
    )
    p_start.add_argument("--listen-host", default=GATEWAY)
    p_start.add_argument(
        "--domain",
        action="append",
        default=None,
        help=f"domain of organisation {ORG!r} (default {DOMAIN})",
    )
    p_mint = commands.add_parser("mint", help="mint an EAB credential")
    p_mint.add_argument("--endpoint", default="public", choices=["private", "public"])
    p_mint.add_argument("--out", type=Path, required=True, help="file for the credential (0600)")
    commands.add_parser("accounts", help="print the number of ACME accounts as JSON")
    p_stop = commands.add_parser("stop", help="stop the server and remove its data")
    p_stop.add_argument("--keep-data", action="store_true")
    for sub in (p_start, p_mint, commands.choices["accounts"], p_stop):
        sub.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir
    try:
        if args.command == "start":
            server = start(
                state_dir,
                dict(args.host),
                listen_host=args.listen_host,
                domains=args.domain or (DOMAIN,),
            )
            print(json.dumps(server.describe()))
            return 0
        loaded = LabAcme.load(state_dir.resolve())
        if args.command == "stop":
            print(json.dumps({"stopped": stop(state_dir, remove_data=not args.keep_data)}))
            return 0
        if loaded is None or not loaded.alive():
            raise RuntimeError(f"no acmefleet server is running from {state_dir}")
        if args.command == "mint":
            minted = loaded.mint(args.endpoint)
            write_private(args.out, json.dumps(minted) + "\n")
            shown = {k: v for k, v in minted.items() if k != "hmac_key"}
            print(json.dumps({**shown, "file": str(args.out)}))
        elif args.command == "accounts":
            print(json.dumps({"accounts": loaded.accounts()}))
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


# -- Molecule scenarios of the roles (tests/hosts/test_role_*.py)

REPO = Path(__file__).resolve().parents[2]
MOLECULE_TIMEOUT = 2400.0
DESTROY_TIMEOUT = 600.0


def lab(*args: str, check: bool = True) -> str:
    """``python -m acmefleet.lab ARGS`` with this Python, from the repository."""
    done = subprocess.run(
        [sys.executable, "-m", "acmefleet.lab", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"acmefleet.lab {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def lab_hosts() -> dict[str, str]:
    """Name -> address of the lab hosts that are up."""
    return {h["name"]: h["address"] for h in json.loads(lab("list") or "[]")}


def ssh(
    address: str, command: str, *, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as root on a lab host (the lab's key, its known_hosts, strictly)."""
    config = json.loads(lab("ssh-config"))
    return subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={config['known_hosts']}",
            "-i",
            config["private_key"],
            "-o",
            "ConnectTimeout=5",
            f"root@{address}",
            command,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        timeout=timeout,
    )


@dataclass
class ScenarioRun:
    """One ``molecule test --destroy=never`` of a role, before its destroy."""

    role: str
    ephemeral: Path
    log_path: Path
    returncode: int
    output: str
    seconds: float

    @property
    def acme_state(self) -> Path:
        return self.ephemeral / "acmefleet"

    def eab_files(self) -> list[Path]:
        """The credential prepare minted for each host (eab-HOST.json, or eab.json, 0600)."""
        return sorted([*self.ephemeral.glob("eab-*.json"), *self.ephemeral.glob("eab.json")])

    def secrets(self) -> list[str]:
        """Every EAB HMAC key prepare minted (eab.json and the server's record)."""
        found = [json.loads(eab.read_text())["hmac_key"] for eab in self.eab_files()]
        record = self.acme_state / SECRETS_FILE
        if record.exists():
            found.extend(s for s in record.read_text().split() if s)
        return list(dict.fromkeys(found))

    def server_log(self) -> str:
        path = self.acme_state / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def failure_text(self, tail: int = 15000) -> str:
        return (
            f"molecule test of {self.role} exited {self.returncode} after "
            f"{self.seconds:.0f} s (full output: {self.log_path}):\n{self.output[-tail:]}\n"
            f"lab hosts now:\n{_lab_status()}"
        )


def _lab_status() -> str:
    """python -m acmefleet.lab status: tells a host that died from one whose sshd stopped."""
    done = subprocess.run(
        [sys.executable, "-m", "acmefleet.lab", "status"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (done.stdout + done.stderr).strip() or "(no hosts)"


def _molecule(role: str, ephemeral: Path, *args: str, timeout: float) -> tuple[int, str, float]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral),
        "NO_COLOR": "1",
        "PY_COLORS": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            [str(Path(venv_bin) / "molecule"), *args],
            cwd=REPO / "roles" / role,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        partial = (exc.stdout or b"") + (exc.stderr or b"")
        text = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        code, output = -1, f"{text}\n[timed out after {timeout:.0f} s]"
    return code, output, time.monotonic() - started


@contextlib.contextmanager
def scenario_run(
    role: str, workdir: Path, host_names: Sequence[str], timeout: float = MOLECULE_TIMEOUT
) -> Iterator[ScenarioRun]:
    """``molecule test --destroy=never`` for ``role``; yields before the destroy.

    The hosts stay up inside the ``with`` block (their logs can be read), then
    ``molecule destroy`` stops them and the server, also on failure. A host of the scenario
    left up by an interrupted run is taken down first.
    """
    for name in set(host_names) & set(lab_hosts()):
        lab("down", name)
    ephemeral = workdir / "molecule"
    ephemeral.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"molecule-{role}.log"
    try:
        code, output, seconds = _molecule(
            role, ephemeral, "test", "--destroy=never", timeout=timeout
        )
        log_path.write_text(output)
        yield ScenarioRun(role, ephemeral, log_path, code, output, seconds)
    finally:
        server_log = ephemeral / "acmefleet" / "server.log"
        if server_log.exists():  # destroy prunes the ephemeral directory; keep the log
            shutil.copyfile(server_log, workdir / f"acmefleet-{role}.log")
        code, output, _ = _molecule(role, ephemeral, "destroy", timeout=DESTROY_TIMEOUT)
        (workdir / f"molecule-{role}-destroy.log").write_text(output)
        for name in set(host_names) & set(lab_hosts()):
            lab("down", name, check=False)
        stop(ephemeral / "acmefleet")


if __name__ == "__main__":
    sys.exit(main())
