"""The real playbooks over SSH on three test hosts: server, Apache+Certbot, Nginx+Lego.

acme_server.yml deploys the server; enroll.yml pushes each web host a fresh single-use EAB
and applies its stack; from the controller every host then completes a TLS handshake that
chains to acmefleet's CA for its names. Both EABs end up bound with their HMAC erased; a
second run of every playbook changes nothing; each host's renewal timer service, started by
hand, gets a new certificate that its web server serves; no secret leaks anywhere.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from acmefleet.console.client import RemoteBackend
from acmefleet.fleet import tls
from acmefleet.fleet.inventory import load_fleet
from tests.hosts.fleetlab import ansible_playbook, lab_fleet, ssh

pytestmark = pytest.mark.hosts
HOSTS = [("p3srv", 60, None), ("p3apache", 61, "certbot_apache"), ("p3nginx", 62, "lego_nginx")]
RENEW_UNITS = {"certbot_apache": "certbot.service", "lego_nginx": "lego-renew.service"}
SHORT_PROFILE = {"private-server": {"kind": "private-server", "validity_days": 20}}
SEARCHED = "/etc /var /root /opt /tmp /home /srv /run"


def served(inventory: Path, bundle: Path) -> dict[str, tls.ServedCertificate]:
    fleet = load_fleet(inventory)
    return tls.probe_all(list(fleet.hosts), bundle)


def test_playbooks_enrol_verify_rerun_renew_and_keep_secrets(tmp_path: Path) -> None:
    with lab_fleet(tmp_path, HOSTS, acme_server_profiles=SHORT_PROFILE) as (lab, hosts, inv):
        controller = tmp_path / "controller"
        token_file, bundle = controller / "p3srv-admin-token", controller / "p3srv-ca-bundle.pem"
        server_vars = [
            "-e",
            f"acme_server_admin_token_dest={token_file}",
            "-e",
            f"acme_server_ca_bundle_dest={bundle}",
        ]
        runs = [ansible_playbook("acme_server.yml", inv, *server_vars)]
        assert runs[-1].rc == 0, runs[-1].output[-6000:]
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        admin_token = token_file.read_text().strip()
        api_url = f"https://{hosts['p3srv'].address}:8555"

        # Mint the EABs up front (as acmefleet rollout does) so the test knows the secrets.
        with RemoteBackend(api_url, admin_token, ca_bundle=bundle) as api:
            minted = {
                name: api.mint_eab("lab", "private", days=1) for name, _, stack in HOSTS if stack
            }
        secret_vars = tmp_path / "eab.json"
        fd = os.open(secret_vars, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(
                {
                    "acmefleet_preminted_eab": {
                        h: {"kid": m["kid"], "hmac_key": m["hmac_key"]} for h, m in minted.items()
                    }
                },
                handle,
            )
        enroll_vars = [
            "-e",
            f"acmefleet_api_url={api_url}",
            "-e",
            f"acmefleet_console_token_file={token_file}",
            "-e",
            f"acmefleet_ca_bundle={bundle}",
        ]
        runs.append(ansible_playbook("enroll.yml", inv, *enroll_vars, "-e", f"@{secret_vars}"))
        assert runs[-1].rc == 0, runs[-1].output[-8000:]
        runs.append(
            ansible_playbook("verify.yml", inv, *enroll_vars, "-e", "acmefleet_verify_min_days=1")
        )
        assert runs[-1].rc == 0, runs[-1].output[-6000:]

        # From the controller: the chain verifies to acmefleet's CA for the right names.
        first = served(inv, bundle)
        for name, _, _ in HOSTS[1:]:
            seen = first[name]
            assert seen.verified, seen.problem
            assert set(seen.names) == {f"{name}.lab.example"}
            assert seen.issuer and "Private" in seen.issuer

        # Both EABs bound to accounts, their HMAC keys erased, in the server's database.
        query = (
            "import sqlite3; c = sqlite3.connect('/var/lib/acmefleet/acmefleet.db'); "
            "print(c.execute('SELECT kid, hmac_key IS NULL, bound_at IS NOT NULL, "
            "account_id FROM eab_credentials').fetchall())"
        )
        rows = ssh(lab, hosts["p3srv"], f'/opt/acmefleet/bin/python -c "{query}"')
        assert rows.returncode == 0, rows.stderr
        state = {kid: (erased, bound, account) for kid, erased, bound, account in eval(rows.stdout)}
        for credential in minted.values():
            erased, bound, account = state[credential["kid"]]
            assert erased == 1 and bound == 1 and account, state

        # A second run of every playbook changes nothing.
        for playbook, extra in (
            ("acme_server.yml", server_vars),
            ("enroll.yml", enroll_vars),
            ("verify.yml", [*enroll_vars, "-e", "acmefleet_verify_min_days=1"]),
        ):
            again = ansible_playbook(playbook, inv, *extra)
            runs.append(again)
            assert again.rc == 0, again.output[-6000:]
            assert set(again.changed().values()) == {0}, (
                playbook,
                again.changed(),
                again.output[-6000:],
            )

        # Renewal: each host's timer service, started by hand, gets a new serial (the profile
        # issues 20-day certificates, inside both clients' 30-day renewal window).
        for name, _, stack in HOSTS[1:]:
            assert stack is not None
            started = ssh(lab, hosts[name], f"systemctl start {RENEW_UNITS[stack]}", timeout=300)
            assert started.returncode == 0, (name, started.stderr)
        deadline = time.monotonic() + 60
        renewed = served(inv, bundle)
        while time.monotonic() < deadline and any(
            renewed[n].serial == first[n].serial for n, _, _ in HOSTS[1:]
        ):
            time.sleep(2)
            renewed = served(inv, bundle)
        for name, _, _ in HOSTS[1:]:
            assert renewed[name].serial != first[name].serial, name
            assert renewed[name].verified, renewed[name].problem

        # No HMAC key or admin token in Ansible's output, the hosts' logs, or any file other
        # users can read.
        secrets = [admin_token, *(m["hmac_key"] for m in minted.values())]
        for run in runs:
            for secret in secrets:
                assert secret not in run.output
        for name, _, _ in HOSTS:
            for secret in secrets:
                found = ssh(
                    lab,
                    hosts[name],
                    f"grep -rlsF -- '{secret}' {SEARCHED} 2>/dev/null; "
                    f"journalctl --no-pager 2>/dev/null | grep -cF -- '{secret}'",
                )
                lines = found.stdout.split()
                assert lines and lines[-1] == "0", (name, "journal", lines)
                for path in lines[:-1]:
                    mode = ssh(lab, hosts[name], f"stat -c %a {path}").stdout.strip()
                    assert mode[-1] == "0" and mode[-2] == "0", (name, path, mode)
