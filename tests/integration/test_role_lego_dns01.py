"""lego_nginx's dns-01 mode, its certificate step run on this machine by real ``ansible-playbook``.

Debian's Knot on loopback takes the RFC 2136 updates (TSIG key), acmefleet's public endpoint
asks it (``validation.dns_resolvers``); the role's ``state.yml`` + ``certificate.yml`` run with
``acmefleet_challenge: dns-01`` for a name and its wildcard: check mode (nothing written, the
secret file included), converge (lego 4.9.1 ``--dns rfc2136``, the secret read from its 0600
file through ``RFC2136_TSIG_SECRET_FILE``), converged again (no change); then back to http-01
removes the secret file. Every process's command line and environment is sampled while the
role runs: the TSIG secret must be in none, nor in the ``-vvv`` output. The host test
(tests/hosts/test_challenge_enrolment.py) runs the whole role on lab hosts.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.acmefleet_server import AcmefleetServer, checked_acmefleet
from tests.support.ansible_cli import ansible
from tests.support.clients import CONTACT, challenges_for, check_issued
from tests.support.knot import ALGORITHM, KEY_NAME, ZONE, KnotServer
from tests.support.secret_watch import watching

pytestmark = pytest.mark.integration

ROLE = Path(__file__).resolve().parents[2] / "roles" / "lego_nginx"
NAMES = [f"role.{ZONE}", f"*.role.{ZONE}"]
PLAYBOOK = """---
- name: The certificate step of lego_nginx, on this machine
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  handlers:
    - name: Reload nginx (lego_nginx)
      ansible.builtin.debug:
        msg: nginx would reload
  tasks:
    - name: Check the inputs
      ansible.builtin.include_tasks: {role}/tasks/validate.yml
    - name: Inspect the certificate and the account
      ansible.builtin.include_tasks: {role}/tasks/state.yml
    - name: Obtain the certificate
      ansible.builtin.include_tasks: {role}/tasks/certificate.yml
"""


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    with KnotServer(tmp_path_factory.mktemp("knot")) as server:
        yield server


@pytest.fixture(scope="module")
def acmefleet(
    knot: KnotServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcmefleetServer]:
    settings = {"dns_resolvers": f'["{knot.address}"]', "timeout_seconds": "5"}
    with checked_acmefleet(tmp_path_factory.mktemp("acmefleet"), settings=settings) as server:
        yield server


def run_step(
    workdir: Path, knot: KnotServer, variables: dict[str, object], *options: str
) -> subprocess.CompletedProcess[str]:
    """The role's steps with ``variables``, given in a 0600 extra-vars file (not on argv)."""
    playbook = workdir / "certificate-step.yml"
    playbook.write_text(PLAYBOOK.format(role=ROLE))
    extra = workdir / f"step-{secrets.token_hex(4)}.json"
    extra.touch(0o600)
    extra.write_text(json.dumps({**variables, "ansible_python_interpreter": "/usr/bin/python3"}))
    try:
        return ansible(
            "ansible-playbook",
            "-i",
            "localhost,",
            "-e",
            f"@{extra}",
            *options,
            str(playbook),
            env={"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"},
        )
    finally:
        extra.unlink()


def recap(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("localhost") and "ok=" in x)
    return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}


def test_dns01_mode_obtains_a_wildcard_with_the_secret_only_in_its_file(
    acmefleet: AcmefleetServer, knot: KnotServer, tmp_path: Path
) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "public")
    path = tmp_path / "lego"
    ca_file = tmp_path / "acmefleet.crt"
    ca_file.write_bytes(acmefleet.ca_bundle.read_bytes())
    variables: dict[str, object] = {
        "acmefleet_directory_url": acmefleet.directory("public"),
        "acmefleet_ca_bundle": str(acmefleet.ca_bundle),
        "lego_nginx_ca_file": str(ca_file),
        "acmefleet_names": NAMES,
        "acmefleet_email": CONTACT,
        "acmefleet_eab_kid": kid,
        "acmefleet_eab_hmac_key": hmac_key,
        "lego_nginx_path": str(path),
        "acmefleet_challenge": "dns-01",
        "acmefleet_rfc2136_server": "127.0.0.1",
        "acmefleet_rfc2136_port": knot.port,
        "acmefleet_rfc2136_tsig_key": KEY_NAME,
        "acmefleet_rfc2136_tsig_algorithm": ALGORITHM,
        "acmefleet_rfc2136_tsig_secret": knot.secret,
        # knotd is on a free port, not on the zone's NS address and port 53.
        "lego_nginx_dns_propagation_check": False,
        "lego_nginx_dns_sequence_interval": 1,
        "lego_nginx_dns_propagation_timeout": 20,
    }
    secret_file = path / "rfc2136-tsig-secret"

    dry = run_step(tmp_path, knot, variables, "--check")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "check mode: would run lego" in dry.stdout
    assert not secret_file.exists()
    assert knot.secret not in dry.stdout + dry.stderr

    with watching(knot.secret, markers=("--dns",)) as watch:
        converge = run_step(tmp_path, knot, variables, "-vvv")
    output = converge.stdout + converge.stderr
    assert converge.returncode == 0, output[-6000:]
    assert watch.seen.get("--dns", 0) > 0, "the watch never saw lego run"
    assert watch.hits == [], watch.hits
    assert knot.secret not in output and hmac_key not in output
    # -vvv shows lego's arguments and environment: the secret's file, not the secret.
    assert "RFC2136_TSIG_SECRET_FILE" in output and '"rfc2136"' in output, output[-6000:]
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert (secret_file.stat().st_uid, secret_file.stat().st_gid) == (0, 0)
    assert secret_file.read_text().strip() == knot.secret
    pem = (path / "certificates" / f"{NAMES[0]}.crt").read_bytes()
    check_issued(acmefleet, pem, NAMES, level="public", context=output[-3000:])
    rows = challenges_for(acmefleet, [NAMES[0]])
    assert {r["type"] for r in rows if r["challenge_status"] == "valid"} == {"dns-01"}, rows

    again = run_step(
        tmp_path, knot, {**variables, "acmefleet_eab_kid": "", "acmefleet_eab_hmac_key": ""}
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert recap(again)["changed"] == 0, again.stdout

    # Back to http-01: the TSIG secret leaves the host (the certificate stays current).
    http = run_step(tmp_path, knot, {**variables, "acmefleet_challenge": "http-01"})
    assert http.returncode == 0, http.stdout + http.stderr
    assert not secret_file.exists()


def test_dns01_mode_without_a_secret_fails_before_anything_runs(
    acmefleet: AcmefleetServer, knot: KnotServer, tmp_path: Path
) -> None:
    variables: dict[str, object] = {
        "acmefleet_directory_url": acmefleet.directory("public"),
        "acmefleet_ca_bundle": str(acmefleet.ca_bundle),
        "acmefleet_names": NAMES,
        "acmefleet_email": CONTACT,
        "lego_nginx_path": str(tmp_path / "lego"),
        "acmefleet_challenge": "dns-01",
        "acmefleet_rfc2136_server": "127.0.0.1",
        "acmefleet_rfc2136_tsig_key": KEY_NAME,
    }
    failed = run_step(tmp_path, knot, variables)
    assert failed.returncode != 0
    assert "dns-01 needs acmefleet_rfc2136_server" in failed.stdout, failed.stdout[-3000:]
    assert not (tmp_path / "lego").exists()
