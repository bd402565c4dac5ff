"""``acmefleet demo --local``: an ACME server on this machine, proven with real clients.

No test hosts: the demo initialises a data directory (on its first run), starts the server
from it, enrols Debian's certbot and lego on the private endpoint (each one if installed),
and prints a fresh single-use EAB with the exact commands that use it. With ``--wait`` the
server keeps running until Ctrl-C. Plain ``acmefleet demo`` is the roll-out on test hosts
(acmefleet.fleet.rollout_demo).
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography import x509

from acmefleet.clock import SystemClock
from acmefleet.config import load_config
from acmefleet.console import credentials, organisations
from acmefleet.console.errors import ConsoleError
from acmefleet.server.datadir import DataDir, initialise, require_initialised

DEMO_ORG = "demo"
DEMO_DOMAIN = "demo.test"
Echo = Callable[[str], None]


def _acmefleet() -> str:
    return str(Path(sys.executable).with_name("acmefleet"))


def prepare(data_dir: Path, listen: str, pki_listen: str, echo: Echo) -> DataDir:
    if not (data_dir / "config.toml").exists():
        port, pki_port = listen.rpartition(":")[2], pki_listen.rpartition(":")[2]
        initialise(  # the demo mints EABs itself; the console token is not needed
            data_dir,
            base_url=f"https://localhost:{port}",
            pki_base_url=f"http://localhost:{pki_port}",
            listen=listen,
            pki_listen=pki_listen,
            clock=SystemClock(),
            passphrase=None,
        )
        echo(f"initialised {data_dir}")
    data = require_initialised(data_dir)
    database = data.open_database()
    try:
        with database.write() as conn:
            now = SystemClock().now()
            try:
                organisations.create(conn, DEMO_ORG, actor="demo", now=now)
                organisations.add_domain(
                    conn, DEMO_ORG, DEMO_DOMAIN, validated=False, actor="demo", now=now
                )
            except ConsoleError:
                pass  # prepared by an earlier run
    finally:
        database.dispose()
    return data


def mint(data: DataDir, endpoint: str) -> credentials.MintedCredential:
    database = data.open_database()
    try:
        with database.write() as conn:
            return credentials.mint(
                conn,
                load_config(data.root),
                org_name=DEMO_ORG,
                endpoint=endpoint,
                actor="demo",
                now=SystemClock().now(),
            )
    finally:
        database.dispose()


def wait_ready(url: str, bundle: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    context = ssl.create_default_context(cafile=str(bundle))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server stopped during start-up; see its log")
        try:
            if httpx.get(url, verify=context, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer at {url} within {timeout:.0f} s")


def certbot_command(
    data: DataDir, minted: credentials.MintedCredential, work: Path, name: str
) -> list[str]:
    return [
        "certbot",
        "certonly",
        "--standalone",
        "--non-interactive",
        "--agree-tos",
        "-m",
        f"admin@{DEMO_DOMAIN}",
        "--server",
        minted.directory,
        "--eab-kid",
        minted.kid,
        "--eab-hmac-key",
        minted.hmac_key,
        "--config-dir",
        str(work / "etc"),
        "--work-dir",
        str(work / "work"),
        "--logs-dir",
        str(work / "logs"),
        "-d",
        name,
    ]


def lego_command(minted: credentials.MintedCredential, work: Path, name: str) -> list[str]:
    return [
        "lego",
        "--server",
        minted.directory,
        "--eab",
        "--kid",
        minted.kid,
        "--hmac",
        minted.hmac_key,
        "--email",
        f"admin@{DEMO_DOMAIN}",
        "--accept-tos",
        "--path",
        str(work),
        "--http",
        "--http.port",
        "127.0.0.1:8402",
        "-d",
        name,
        "run",
    ]


def _show(command: list[str], env_name: str, bundle: Path) -> str:
    quoted = " ".join(command)
    return f"{env_name}={bundle} {quoted}"


def enrol(data: DataDir, client: str, echo: Echo) -> None:
    """Run one real client against the private endpoint and show what it got."""
    if shutil.which(client) is None:
        echo(f"  {client}: not installed, skipped")
        return
    minted = mint(data, "private")
    work = data.root / "demo-clients" / client
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, mode=0o700)
    name = f"{client}.{DEMO_DOMAIN}"
    if client == "certbot":
        command, env = certbot_command(data, minted, work, name), "REQUESTS_CA_BUNDLE"
        cert_path = work / "etc" / "live" / name / "cert.pem"
    else:
        command, env = lego_command(minted, work, name), "LEGO_CA_CERTIFICATES"
        cert_path = work / "certificates" / f"{name}.crt"
    started = time.monotonic()
    # The HMAC key is on this command line only for the seconds the client runs,
    # in the demo's own private directory; production roles pass it differently.
    result = subprocess.run(
        command,
        env={**os.environ, env: str(data.ca_bundle)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0 or not cert_path.exists():
        echo(f"  {client}: FAILED\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    echo(
        f"  {client}: {name} serial {leaf.serial_number:x} from '{leaf.issuer.rfc4514_string()}', "
        f"valid until {leaf.not_valid_after_utc:%Y-%m-%d} ({time.monotonic() - started:.1f} s)"
    )


def run_demo(data_dir: Path, *, listen: str, pki_listen: str, wait: bool, echo: Echo) -> int:
    data = prepare(data_dir, listen, pki_listen, echo)
    log_path = data.root / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [_acmefleet(), "server", "run", "--data-dir", str(data.root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        config = load_config(data.root)
        wait_ready(config.directory_url("private"), data.ca_bundle, proc)
        echo(f"ACME server running (pid {proc.pid}), log: {log_path}")
        for endpoint in config.endpoints.values():
            echo(f"  {endpoint.name:<8} ({endpoint.type}) {config.directory_url(endpoint.name)}")
        echo("Enrolling real clients on the private endpoint:")
        for client in ("certbot", "lego"):
            enrol(data, client, echo)
        minted = mint(data, "private")
        work = Path("/tmp/acmefleet-demo-client")  # noqa: S108 - a path the user sees
        echo("\nA fresh single-use EAB credential for the private endpoint (shown once):")
        echo(f"  key id:   {minted.kid}\n  HMAC key: {minted.hmac_key}")
        echo("Use it with certbot (it binds the key, so use it once):")
        name = f"host.{DEMO_DOMAIN}"
        echo(
            "  "
            + _show(
                certbot_command(data, minted, work / "certbot", name),
                "REQUESTS_CA_BUNDLE",
                data.ca_bundle,
            )
        )
        echo(
            "or with lego (mint another with 'acmefleet admin eab create --org demo "
            f"--endpoint private --data-dir {data.root}'):"
        )
        echo(
            "  "
            + _show(
                lego_command(minted, work / "lego", name), "LEGO_CA_CERTIFICATES", data.ca_bundle
            )
        )
        if not wait:
            return 0
        echo("\nThe server keeps running; press Ctrl-C to stop it.")
        try:
            proc.wait()
        except KeyboardInterrupt:
            echo("stopping")
        return 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
