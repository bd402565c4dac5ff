"""acmefleet-renew-check (roles/renew_check) driving Debian's real lego 4.9.1.

lego 4.9 knows nothing of ARI: the check asks acmefleet's renewalInfo and runs lego's forced
renewal (``renew --days=-1``) only once the window has opened. Shown here without hosts:
not due (default window) → lego not run; window pulled forward by the operator → the
certificate's moment lies in the new window; revoked → due at once → lego renews.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from tests.support.acmefleet_server import ACMEFLEET, AcmefleetServer
from tests.support.clients import CONTACT, LEGO, _loopback_env, run_lego

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).parents[2] / "roles" / "renew_check" / "files" / "acmefleet-renew-check"
DUE_AT = re.compile(r"this certificate at (\S+)")


def lego_args(server: AcmefleetServer, path: Path, name: str) -> list[str]:
    return [
        LEGO,
        "--server",
        server.directory("private"),
        "--path",
        str(path),
        "--accept-tos",
        "--email",
        CONTACT,
        "--http",
        "--http.port",
        f"127.0.0.1:{server.http01_port}",
        "-d",
        name,
    ]


def check(
    server: AcmefleetServer, path: Path, name: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """The check as the systemd unit runs it, with lego's forced renewal after "--"."""
    env = _loopback_env(path, {"LEGO_CA_CERTIFICATES": str(server.ca_bundle)})
    forced = [*lego_args(server, path, name), "--eab", "renew", "--days=-1", "--no-random-sleep"]
    return subprocess.run(
        [
            "python3",
            str(SCRIPT),
            "--certificate",
            str(path / "certificates" / f"{name}.crt"),
            "--directory",
            server.directory("private"),
            "--ca-file",
            str(server.ca_bundle),
            *extra,
            "--",
            *forced,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def serial_of(path: Path, name: str) -> int:
    pem = (path / "certificates" / f"{name}.crt").read_bytes()
    return x509.load_pem_x509_certificates(pem)[0].serial_number


@pytest.fixture
def lego_cert(acmefleet: AcmefleetServer, tmp_path: Path) -> tuple[Path, str]:
    name = f"rc{os.getpid() % 1000}-{tmp_path.name[-6:].lower().strip('_')}.example.com"
    name = re.sub(r"[^a-z0-9.-]", "", name)
    run_lego(
        ["--http", "--http.port", f"127.0.0.1:{acmefleet.http01_port}", "-d", name, "run"],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=tmp_path,
        directory=acmefleet.directory("private"),
        eab=acmefleet.mint_eab("acme", "private"),
    ).check()
    return tmp_path, name


def test_not_due_then_pulled_forward_to_its_own_moment(
    acmefleet: AcmefleetServer, lego_cert: tuple[Path, str]
) -> None:
    """Not due: lego is not run. Pulled forward by the operator: the certificate's moment
    lies in the new window (the renewal itself, at that moment, is shown by the lab's
    mass-replacement drill; here by revocation below, without waiting for it)."""
    path, name = lego_cert
    first = serial_of(path, name)
    idle = check(acmefleet, path, name)
    assert idle.returncode == 0, idle.stderr
    assert idle.stdout.startswith("not due"), idle.stdout
    assert serial_of(path, name) == first
    asked = datetime.now(UTC)
    pulled = subprocess.run(
        [
            ACMEFLEET,
            "admin",
            "cert",
            "pull-forward",
            "--serial",
            format(first, "x"),
            "--reason",
            "renew-check test",
            "--within",
            "1",
            "--data-dir",
            str(acmefleet.data_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert pulled.returncode == 0, pulled.stderr
    dry = check(acmefleet, path, name, "--dry-run")
    found = DUE_AT.search(dry.stdout)
    assert found is not None, dry.stdout
    moment = datetime.fromisoformat(found.group(1))
    assert asked - timedelta(seconds=2) <= moment <= asked + timedelta(hours=1, seconds=2), (
        dry.stdout
    )
    assert serial_of(path, name) == first  # a dry run renews nothing


def test_revoked_is_due_at_once(acmefleet: AcmefleetServer, lego_cert: tuple[Path, str]) -> None:
    path, name = lego_cert
    first = serial_of(path, name)
    admin = [ACMEFLEET, "admin", "cert"]
    where = ["--data-dir", str(acmefleet.data_dir)]
    listed = subprocess.run(
        [*admin, "list", "--name", name, "--json", *where],
        capture_output=True,
        text=True,
        check=True,
    )
    (row,) = json.loads(listed.stdout)
    subprocess.run([*admin, "revoke", row["id"], "--reason", "1", *where], check=True)
    renewed = check(acmefleet, path, name)
    assert renewed.stdout.startswith("due, renewing"), renewed.stdout + renewed.stderr
    assert serial_of(path, name) != first


def test_refusals_renew_nothing(acmefleet: AcmefleetServer, tmp_path: Path) -> None:
    missing = subprocess.run(
        [
            "python3",
            str(SCRIPT),
            "--certificate",
            str(tmp_path / "none.crt"),
            "--directory",
            acmefleet.directory("private"),
            "--",
            "touch",
            str(tmp_path / "ran"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 0 and "nothing to renew" in missing.stdout
    cert = tmp_path / "c.pem"
    cert.write_bytes(b"not a certificate")
    for directory in ("http://127.0.0.1:1/directory", acmefleet.directory("private")):
        refused = subprocess.run(
            [
                "python3",
                str(SCRIPT),
                "--certificate",
                str(cert),
                "--directory",
                directory,
                "--ca-file",
                str(acmefleet.ca_bundle),
                "--",
                "touch",
                str(tmp_path / "ran"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.startswith("acmefleet-renew-check:")
    assert not (tmp_path / "ran").exists()
