"""The scripting interface: real commands, exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.acmefleet_server import ACMEFLEET

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACMEFLEET, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def fails(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "data"
    result = cli("server", "init", "--data-dir", str(path), "--listen", "127.0.0.1:0")
    assert result.returncode == 0, result.stderr
    return path


def test_init_creates_private_files(data_dir: Path) -> None:
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "acmefleet.db").stat().st_mode) == 0o600
    for level in ("private", "public"):
        assert stat.S_IMODE((data_dir / "ca" / level / "issuer.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "tls" / "server.key").stat().st_mode) == 0o600
    assert "BEGIN CERTIFICATE" in (data_dir / "ca-bundle.pem").read_text()


def test_init_refuses_to_overwrite(data_dir: Path) -> None:
    before = sorted(p.name for p in data_dir.iterdir())
    fails(cli("server", "init", "--data-dir", str(data_dir)), "refusing to overwrite")
    assert sorted(p.name for p in data_dir.iterdir()) == before
    assert not [p for p in data_dir.parent.iterdir() if ".init-" in p.name]


def test_init_killed_half_way_is_cleared_by_the_next(tmp_path: Path) -> None:
    """kill -9 while init builds in the service user's empty directory: the next init
    clears what it left (it used to refuse the directory, and ``server run`` too)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    command = [ACMEFLEET, "server", "init", "--data-dir", str(data), "--listen", "127.0.0.1:0"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(data.glob(".data.init-*")):
        assert first.poll() is None, "init ended before its staging directory was seen"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    first.kill()
    first.wait(timeout=10)
    assert [p.name.startswith(".data.init-") for p in data.iterdir()] == [True]
    result = cli(*command[1:])
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in data.iterdir()) == [
        "acmefleet.db",
        "ca",
        "ca-bundle.pem",
        "config.toml",
        "tls",
    ]


def test_admin_flow_and_eab_listing(data_dir: Path) -> None:
    d = ("--data-dir", str(data_dir))
    assert cli("admin", "org", "create", "Example Corp", *d).returncode == 0
    fails(cli("admin", "org", "create", "Example Corp", *d), "already exists")
    assert cli("admin", "domain", "add", "Example Corp", "Example.COM", *d).returncode == 0
    fails(cli("admin", "domain", "add", "Example Corp", "example.com", *d), "already")
    fails(cli("admin", "domain", "add", "Nobody", "example.org", *d), "no organisation")
    fails(cli("admin", "domain", "add", "Example Corp", "bad..name", *d), "invalid label")
    minted = json.loads(
        cli(
            "admin", "eab", "create", "--org", "Example Corp", "--endpoint", "private", "--json", *d
        ).stdout
    )
    assert set(minted) >= {"kid", "hmac_key", "directory", "ca_bundle"}
    assert not minted["hmac_key"].startswith("-") and "=" not in minted["hmac_key"]
    assert minted["directory"].endswith("/acme/private/directory")
    fails(
        cli("admin", "eab", "create", "--org", "Example Corp", "--endpoint", "nope", *d),
        "no endpoint",
    )
    listed = cli("admin", "eab", "list", "--json", *d)
    rows = json.loads(listed.stdout)
    assert [r["status"] for r in rows] == ["unused"]
    assert minted["hmac_key"] not in listed.stdout
    assert minted["hmac_key"] not in cli("admin", "eab", "list", *d).stdout
    assert cli("admin", "eab", "revoke", minted["kid"], *d).returncode == 0
    fails(cli("admin", "eab", "revoke", minted["kid"], *d), "revoked")
    assert json.loads(cli("admin", "eab", "list", "--json", *d).stdout)[0]["status"] == "revoked"


def test_domain_names_are_ldh_only(data_dir: Path) -> None:
    """A newline passed the old ``^…$`` label check and was stored (issue 11, item 4)."""
    d = ("--data-dir", str(data_dir))
    assert cli("admin", "org", "create", "Newline Corp", *d).returncode == 0
    fails(cli("admin", "domain", "add", "Newline Corp", "evil\n.example.com", *d), "invalid label")
    fails(
        cli("admin", "domain", "add", "Newline Corp", "www.evil\n.example.com", *d), "invalid label"
    )
    fails(cli("admin", "domain", "add", "Newline Corp", "2001:db8::%x\n/64", *d), "neither")
    listed = json.loads(cli("admin", "domain", "list", "Newline Corp", "--json", *d).stdout)
    assert listed == []


def test_domain_validation_scope(data_dir: Path) -> None:
    """--scope says what a manual validation covers on public endpoints (default: exact)."""
    d = ("--data-dir", str(data_dir))
    assert cli("admin", "org", "create", "Scope Corp", *d).returncode == 0
    wide = ("--validated", "--scope", "subdomains", "--json")
    added = json.loads(
        cli("admin", "domain", "add", "Scope Corp", "scope.example", *wide, *d).stdout
    )
    assert added["validated"] and added["validation_scope"] == "subdomains"
    again = ("--manual", "--justification", "apex only")
    narrowed = cli("admin", "domain", "validate", str(added["id"]), *again, *d)
    assert narrowed.returncode == 0 and "(this name only)" in narrowed.stdout, narrowed.stdout
    bad = ("--validated", "--scope", "wide")
    fails(cli("admin", "domain", "add", "Scope Corp", "x.example", *bad, *d), "'wide' is not one")


def test_missing_data_dir_and_bad_listen(tmp_path: Path, data_dir: Path) -> None:
    fails(cli("admin", "org", "list", "--data-dir", str(tmp_path / "none")), "not an acmefleet")
    fails(cli("server", "run", "--data-dir", str(data_dir), "--listen", "nonsense"), "HOST:PORT")
    fails(cli("server", "run", "--data-dir", str(tmp_path / "none")), "not an acmefleet")


def test_encrypted_ca_keys_need_the_passphrase(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    path = tmp_path / "data"
    assert (
        cli(
            "server", "init", "--data-dir", str(path), "--ca-passphrase-file", str(secret)
        ).returncode
        == 0
    )
    assert b"ENCRYPTED" in (path / "ca" / "private" / "issuer.key").read_bytes()
    fails(cli("server", "run", "--data-dir", str(path), "--listen", "127.0.0.1:1"), "passphrase")


def test_audit_verify_finds_a_tampered_log(data_dir: Path) -> None:
    d = ("--data-dir", str(data_dir))
    assert cli("admin", "org", "create", "Audited Corp", *d).returncode == 0
    assert cli("admin", "audit", "--limit", "1", *d).returncode == 0  # listing still works
    intact = cli("admin", "audit", "verify", *d)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("intact: ") and " events, head " in intact.stdout
    report = json.loads(cli("admin", "audit", "verify", "--json", *d).stdout)
    assert report["intact"] is True and report["problems"] == []

    # Someone with the database file rewrites who created the organisation.
    database = sqlite3.connect(data_dir / "acmefleet.db")
    with database:
        database.execute(
            "UPDATE audit_events SET actor = 'cli:nobody' WHERE target = 'Audited Corp'"
        )
    database.close()
    tampered = cli("admin", "audit", "verify", *d)
    assert tampered.returncode == 1
    assert tampered.stderr.startswith("TAMPERED: ")
    assert "edited" in tampered.stderr
