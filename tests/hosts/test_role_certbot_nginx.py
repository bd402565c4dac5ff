"""``molecule test`` of roles/certbot_nginx on a lab host, and no EAB HMAC key in any log.

The scenario (roles/certbot_nginx/molecule/default) starts acmefleet on the controller,
mints one public-endpoint EAB credential, converges twice (idempotence: nothing changed, no
second account), runs check mode, then verifies from the controller: TLS handshake per name,
names and issuer, one account per host, a forced renewal through certbot.service.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hosts.support_acme import ScenarioRun, lab_hosts, scenario_run, ssh

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(3600)]

ROLE = "certbot_nginx"
HOSTS = ("web32",)
# Everywhere on the host a leftover credential could be (the temporary certbot config,
# Ansible's remote temporary files, logs), /etc/letsencrypt included.
SWEEP = "/etc /root /tmp /var/tmp /var/log /var/lib/letsencrypt /run"


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s[:6] + "…" for s in secrets if s in text]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    with scenario_run(ROLE, tmp_path_factory.mktemp(ROLE), HOSTS) as done:
        yield done
    assert not set(HOSTS) & set(lab_hosts()), "molecule destroy left a lab host up"


def test_molecule_test_passes(run: ScenarioRun) -> None:
    assert run.returncode == 0, run.failure_text()
    assert "idempotence: Executed: Successful" in run.output, run.failure_text()
    assert "verify: Executed: Successful" in run.output, run.failure_text()


def test_the_hmac_key_is_in_no_output_or_log(run: ScenarioRun) -> None:
    assert run.returncode == 0, run.failure_text()
    secrets = run.secrets()
    assert secrets, f"prepare wrote no EAB credential under {run.ephemeral}"
    assert (run.ephemeral / "eab.json").stat().st_mode & 0o777 == 0o600
    assert not leaks(run.output, secrets), "an HMAC key appeared in the molecule/ansible output"
    server_log = run.server_log()
    assert server_log, "no acmefleet server log"
    assert not leaks(server_log, secrets), "an HMAC key appeared in the acmefleet server log"
    assert "Traceback" not in server_log, server_log[-4000:]

    address = lab_hosts()["web32"]
    logs = ssh(
        address, "cat /var/log/letsencrypt/letsencrypt.log*; journalctl --no-pager -o export"
    )
    assert logs.returncode == 0, logs.stderr
    assert "Running deploy-hook command" in logs.stdout, "no renewal in certbot's log"
    assert not leaks(logs.stdout, secrets), "an HMAC key appeared in the host's logs or journal"
    # grep reads the keys from stdin: they are on no command line.
    swept = ssh(address, f"grep -rlsF -f /dev/stdin {SWEEP}; true", stdin="\n".join(secrets) + "\n")
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.split() == [], f"HMAC key left on the host in: {swept.stdout.split()}"


def test_scenario_files_use_no_absolute_checkout_path() -> None:
    scenario = Path(__file__).resolve().parents[2] / "roles" / ROLE / "molecule" / "default"
    for path in scenario.iterdir():
        assert "/work/" not in path.read_text(), f"{path} hard-codes a checkout path"
