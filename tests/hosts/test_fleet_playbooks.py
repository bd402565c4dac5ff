"""The real playbooks over SSH on a matrix of test hosts: each stack on Debian 12 and 13.

acme_server.yml deploys the server; enroll.yml pushes each web host a fresh single-use EAB
and applies its stack; from the controller every host then completes a TLS handshake that
chains to acmefleet's CA for its names. Every EAB ends up bound with its HMAC erased; a
second run of every playbook changes nothing; each host's renewal timer service, started by
hand, gets a new certificate that its web server serves; no secret leaks anywhere.

Most hosts are reached as the lab's sudo user (the plays become root), as at most sites;
the server and one web host as root. The hosts are shared by every test of the module
(one fleet, brought up and enrolled once); the tests run in file order.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from acmefleet.console.client import RemoteBackend
from acmefleet.fleet import preflight, tls
from acmefleet.fleet.inventory import load_fleet
from acmefleet.lab.hosts import Lab, LabHost
from acmefleet.lab.rootfs import DEBIAN_VERSIONS, LAB_USER, SUDOERS_FILE
from tests.hosts.fleetlab import PlaybookRun, Spec, ansible_playbook, lab_fleet, ssh

pytestmark = pytest.mark.hosts
HOSTS = [
    Spec("p3srv", 60, None, "bookworm", "root"),
    Spec("p3a12", 61, "certbot_apache", "bookworm"),
    Spec("p3a13", 63, "certbot_apache", "trixie"),
    Spec("p3n12", 64, "lego_nginx", "bookworm", "root"),
    Spec("p3n13", 62, "lego_nginx", "trixie"),
]
WEB = [spec for spec in HOSTS if spec.stack is not None]
RENEW_UNITS = {"certbot_apache": "certbot.service", "lego_nginx": "lego-renew.service"}
SHORT_PROFILE = {"private-server": {"kind": "private-server", "validity_days": 20}}
SEARCHED = "/etc /var /root /opt /tmp /home /srv /run"


@dataclass
class Fleet:
    lab: Lab
    hosts: dict[str, LabHost]
    inventory: Path
    token_file: Path
    bundle: Path
    server_vars: list[str]
    enroll_vars: list[str]
    minted: dict[str, dict[str, str]]
    runs: list[PlaybookRun] = field(default_factory=list)
    first: dict[str, tls.ServedCertificate] = field(default_factory=dict)

    def served(self) -> dict[str, tls.ServedCertificate]:
        return tls.probe_all(list(load_fleet(self.inventory).hosts), self.bundle)

    def play(self, playbook: str, *extra: str) -> PlaybookRun:
        self.runs.append(ansible_playbook(playbook, self.inventory, *extra))
        return self.runs[-1]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The fleet up, the server deployed, every web host enrolled by enroll.yml."""
    tmp_path = tmp_path_factory.mktemp("fleet")
    with lab_fleet(tmp_path, HOSTS, acme_server_profiles=SHORT_PROFILE) as (lab, hosts, inv):
        controller = tmp_path / "controller"
        token_file, bundle = controller / "p3srv-admin-token", controller / "p3srv-ca-bundle.pem"
        server_vars = [
            "-e",
            f"acme_server_admin_token_dest={token_file}",
            "-e",
            f"acme_server_ca_bundle_dest={bundle}",
        ]
        api_url = f"https://{hosts['p3srv'].address}:8555"
        enroll_vars = [
            "-e",
            f"acmefleet_api_url={api_url}",
            "-e",
            f"acmefleet_console_token_file={token_file}",
            "-e",
            f"acmefleet_ca_bundle={bundle}",
        ]
        state = Fleet(lab, hosts, inv, token_file, bundle, server_vars, enroll_vars, {})
        deployed = state.play("acme_server.yml", *server_vars)
        assert deployed.rc == 0, deployed.output[-6000:]
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"

        # Mint the EABs up front (as acmefleet rollout does) so the tests know the secrets.
        admin_token = token_file.read_text().strip()
        with RemoteBackend(api_url, admin_token, ca_bundle=bundle) as api:
            state.minted = {spec.name: api.mint_eab("lab", "private", days=1) for spec in WEB}
        secret_vars = tmp_path / "eab.json"
        fd = os.open(secret_vars, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            preminted = {
                h: {"kid": m["kid"], "hmac_key": m["hmac_key"]} for h, m in state.minted.items()
            }
            json.dump({"acmefleet_preminted_eab": preminted}, handle)
        enrolled = state.play("enroll.yml", *enroll_vars, "-e", f"@{secret_vars}")
        assert enrolled.rc == 0, enrolled.output[-8000:]
        yield state


def test_every_host_of_the_matrix_runs_its_debian_release(fleet: Fleet) -> None:
    for spec in HOSTS:
        seen = ssh(fleet.lab, fleet.hosts[spec.name], ". /etc/os-release; echo $VERSION_ID")
        assert seen.stdout.strip() == DEBIAN_VERSIONS[spec.suite], (spec, seen)
    assert {(s.stack, s.suite) for s in WEB} == {
        (stack, suite) for stack in RENEW_UNITS for suite in DEBIAN_VERSIONS
    }
    assert {s.user for s in HOSTS} == {"root", LAB_USER}


def test_verify_passes_and_each_chain_verifies_for_its_names(fleet: Fleet) -> None:
    verified = fleet.play("verify.yml", *fleet.enroll_vars, "-e", "acmefleet_verify_min_days=1")
    assert verified.rc == 0, verified.output[-6000:]
    fleet.first = fleet.served()
    for spec in WEB:
        seen = fleet.first[spec.name]
        assert seen.verified, (spec, seen.problem)
        assert set(seen.names) == {f"{spec.name}.lab.example"}
        assert seen.issuer and "Private" in seen.issuer


def test_every_eab_is_bound_and_its_hmac_erased(fleet: Fleet) -> None:
    query = (
        "import sqlite3; c = sqlite3.connect('/var/lib/acmefleet/acmefleet.db'); "
        "print(c.execute('SELECT kid, hmac_key IS NULL, bound_at IS NOT NULL, "
        "account_id FROM eab_credentials').fetchall())"
    )
    rows = ssh(fleet.lab, fleet.hosts["p3srv"], f'/opt/acmefleet/bin/python -c "{query}"')
    assert rows.returncode == 0, rows.stderr
    state = {kid: (erased, bound, account) for kid, erased, bound, account in eval(rows.stdout)}
    for credential in fleet.minted.values():
        erased, bound, account = state[credential["kid"]]
        assert erased == 1 and bound == 1 and account, state


def test_a_second_run_of_every_playbook_changes_nothing(fleet: Fleet) -> None:
    for playbook, extra in (
        ("acme_server.yml", fleet.server_vars),
        ("enroll.yml", fleet.enroll_vars),
        ("verify.yml", [*fleet.enroll_vars, "-e", "acmefleet_verify_min_days=1"]),
    ):
        again = fleet.play(playbook, *extra)
        assert again.rc == 0, again.output[-6000:]
        assert set(again.changed().values()) == {0}, (
            playbook,
            again.changed(),
            again.output[-6000:],
        )


def test_each_renewal_service_gets_a_new_certificate_served(fleet: Fleet) -> None:
    # The profile issues 20-day certificates, inside both clients' 30-day renewal window.
    first = fleet.first or fleet.served()
    for spec in WEB:
        assert spec.stack is not None
        unit = RENEW_UNITS[spec.stack]
        started = ssh(fleet.lab, fleet.hosts[spec.name], f"systemctl start {unit}", timeout=300)
        assert started.returncode == 0, (spec.name, started.stderr)
    deadline = time.monotonic() + 60
    renewed = fleet.served()
    while time.monotonic() < deadline and any(
        renewed[s.name].serial == first[s.name].serial for s in WEB
    ):
        time.sleep(2)
        renewed = fleet.served()
    for spec in WEB:
        assert renewed[spec.name].serial != first[spec.name].serial, spec.name
        assert renewed[spec.name].verified, renewed[spec.name].problem


def test_no_secret_in_output_logs_or_readable_files(fleet: Fleet) -> None:
    admin_token = fleet.token_file.read_text().strip()
    secrets = [admin_token, *(m["hmac_key"] for m in fleet.minted.values())]
    for run in fleet.runs:
        for secret in secrets:
            assert secret not in run.output
    for spec in HOSTS:
        host = fleet.hosts[spec.name]
        for secret in secrets:
            found = ssh(
                fleet.lab,
                host,
                f"grep -rlsF -- '{secret}' {SEARCHED} 2>/dev/null; "
                f"journalctl --no-pager 2>/dev/null | grep -cF -- '{secret}'",
            )
            lines = found.stdout.split()
            assert lines and lines[-1] == "0", (spec.name, "journal", lines)
            for path in lines[:-1]:
                mode = ssh(fleet.lab, host, f"stat -c %a {path}").stdout.strip()
                assert mode[-1] == "0" and mode[-2] == "0", (spec.name, path, mode)


def test_preflight_names_a_login_without_password_less_sudo(fleet: Fleet) -> None:
    """Last (it takes sudo away from one host): preflight says which host and why."""
    fleet_hosts = {h.name: h for h in load_fleet(fleet.inventory).hosts}
    options = fleet.lab.ssh_options()
    assert all(r.ok for r in preflight.preflight(list(fleet_hosts.values()), options).values())
    target = fleet_hosts["p3a13"]
    assert target.user == LAB_USER
    removed = ssh(fleet.lab, fleet.hosts["p3a13"], f"rm /{SUDOERS_FILE}")
    assert removed.returncode == 0, removed.stderr
    verdicts = preflight.preflight(list(fleet_hosts.values()), options)
    assert not verdicts["p3a13"].ok
    assert verdicts["p3a13"].problem == (
        f"{LAB_USER} (uid 1000) is not root and has no password-less sudo "
        "(sudo -n true: sudo: a password is required)"
    ), verdicts["p3a13"]
    assert verdicts["p3a13"].os == "debian 13"
    assert all(v.ok for name, v in verdicts.items() if name != "p3a13"), verdicts
