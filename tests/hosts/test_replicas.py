"""Two server replicas on one PostgreSQL behind HAProxy, deployed by the collection's roles
onto test hosts, and a web host enrolled through the balancer by ``acmefleet rollout``.

The fleet file has the database and the balancer on one host (groups acme_databases and
acme_balancers), two replicas in acme_servers (acme_server_replicas, acme_server_database_host)
and one lego_nginx web host. The roll-out deploys all three roles (acme_server.yml) and enrols
the web host with the balancer's URL. Then:

- both replicas served the roll-out's requests (HAProxy's log names each), and the state is in
  PostgreSQL (no SQLite file on either replica);
- the database password is in no output, no config.toml, no process argument, no journal
  (sudo logs the commands Ansible runs) and no PostgreSQL log; the libpq password file on
  each replica and the generated one on the controller are 0600;
- with one replica stopped, an issuance through the balancer still completes (the failed
  connection is sent to the other replica), and the stopped one comes back;
- acme_server.yml in check mode runs through on the fresh hosts (installing nothing) and
  finds nothing to change on the deployed ones; a second real run changes nothing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from acmefleet.console.client import RemoteBackend
from acmefleet.lab.fleet import LAB_DOMAIN, PKI_PORT
from tests.hosts.fleetlab import Spec, ansible_playbook, lab_fleet, rollout, ssh
from tests.support.acme_client import AccountKey, AcmeClient

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(2400)]
HOSTS = [
    Spec("p6a", 100, None),
    Spec("p6b", 101, None),
    Spec("p6db", 102, None),
    Spec("p6web", 103, "lego_nginx"),
]
REPLICAS = ["p6a", "p6b"]


def _replica_inventory(inventory: Path, addresses: dict[str, str]) -> None:
    """The lab's one-server fleet file made into two replicas, a database and a balancer."""
    doc = yaml.safe_load(inventory.read_text())
    server = doc["acme_servers"][0]
    balancer = addresses["p6db"]
    server["vars"].update(
        acme_server_base_url=f"https://{balancer}:8555",
        acme_server_pki_base_url=f"http://pki.{LAB_DOMAIN}:{PKI_PORT}",
        acme_server_replicas=REPLICAS,
        acme_server_database_host="p6db",
        acme_server_trusted_proxies=[balancer],
    )
    second = {"name": "p6b", "address": addresses["p6b"], "vars": dict(server["vars"])}
    doc["acme_servers"].append(second)
    doc["acme_databases"] = [{"name": "p6db", "address": balancer}]
    doc["acme_balancers"] = [{"name": "p6db", "address": balancer}]
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))


def _issue_through(base_url: str, bundle: Path, api_token: str) -> str:
    """One private issuance through the balancer with the project's protocol client."""
    with RemoteBackend(base_url, api_token, ca_bundle=bundle) as api:
        minted = api.mint_eab("lab", "private", days=1)
    with AcmeClient(f"{base_url}/acme/private/directory", bundle, AccountKey.generate()) as client:
        created = client.new_account(eab=(str(minted["kid"]), str(minted["hmac_key"])))
        assert created.status_code == 201, created.text
        return client.issue_certificate([f"p6check-{time.monotonic_ns()}.{LAB_DOMAIN}"])


def test_replicas_on_postgresql_behind_haproxy_enrol_a_web_host(tmp_path: Path) -> None:
    with lab_fleet(tmp_path, HOSTS) as (lab, hosts, inventory):
        addresses = {name: host.address for name, host in hosts.items()}
        _replica_inventory(inventory, addresses)
        state = inventory.parent / ".acmefleet"
        playbook_vars = [
            "-e",
            f"acme_server_controller_dir={state}",
            "-e",
            f"acme_database_controller_dir={state}",
            "-e",
            f"acme_server_admin_token_dest={state / 'p6a-admin-token'}",
        ]
        # check mode on the fresh hosts: it runs through and installs nothing
        dry = ansible_playbook("acme_server.yml", inventory, "--check", *playbook_vars)
        assert dry.rc == 0, dry.output[-6000:]
        assert set(dry.recap()) == {"p6a", "p6b", "p6db"}, dry.output[-3000:]
        for name in ("p6a", "p6b", "p6db"):
            present = ssh(lab, hosts[name], "ls /opt/acmefleet /etc/haproxy /etc/postgresql")
            assert present.returncode != 0 and not present.stdout.strip(), (name, present)

        code, rows, output = rollout(inventory)
        assert code == 0, output[-8000:]
        assert [(r["host"], r["status"]) for r in rows] == [("p6web", "enrolled")], rows

        password_file = state / "p6db-database-password"
        password = password_file.read_text().strip()
        token = (state / "p6a-admin-token").read_text().strip()
        assert password_file.stat().st_mode & 0o077 == 0
        assert password not in output and token not in output

        # both replicas served the roll-out (HAProxy logs the server of each request)
        log = ssh(lab, hosts["p6db"], "journalctl -u haproxy.service --no-pager -o cat").stdout
        served = {r: len(re.findall(rf"acmefleet_replicas/{r}\b", log)) for r in REPLICAS}
        assert all(served.values()), (served, log[-3000:])

        for name in REPLICAS:
            host = hosts[name]
            listing = ssh(
                lab,
                host,
                "stat -c '%a %U' /var/lib/acmefleet/pgpass; "
                "ls /var/lib/acmefleet; cat /var/lib/acmefleet/config.toml; "
                "ps -eo args; systemctl is-active acmefleet.service",
            ).stdout
            assert listing.startswith("600 acmefleet\n"), listing[:300]
            assert "acmefleet.db" not in listing and 'database_url = "postgresql' in listing
            assert password not in listing and listing.rstrip().endswith("active")
        for name in ("p6a", "p6b", "p6db"):  # sudo's log, the units' output, PostgreSQL's
            journal = ssh(lab, hosts[name], "journalctl --no-pager -o cat", timeout=60).stdout
            logs = ssh(lab, hosts[name], "cat /var/log/postgresql/*.log 2>/dev/null").stdout
            assert journal and password not in journal + logs, name
        tables = ssh(
            lab,
            hosts["p6db"],
            'sudo -u postgres psql -X -At -d acmefleet -c "select count(*) from certificates"',
        )
        assert tables.returncode == 0 and int(tables.stdout.strip()) >= 1, tables

        # one replica stopped: the balancer sends the next issuance to the other one
        base_url = f"https://{addresses['p6db']}:8555"
        bundle = state / "p6a-ca-bundle.pem"
        stopped = ssh(lab, hosts["p6a"], "systemctl stop acmefleet.service")
        assert stopped.returncode == 0, stopped.stderr
        try:
            assert "BEGIN CERTIFICATE" in _issue_through(base_url, bundle, token)
        finally:
            started = ssh(lab, hosts["p6a"], "systemctl start acmefleet.service")
        assert started.returncode == 0, started.stderr
        assert "BEGIN CERTIFICATE" in _issue_through(base_url, bundle, token)

        checked = ansible_playbook("acme_server.yml", inventory, "--check", *playbook_vars)
        assert checked.rc == 0, checked.output[-6000:]
        assert not any(checked.changed().values()), checked.output[-6000:]
        again = ansible_playbook("acme_server.yml", inventory, *playbook_vars)
        assert again.rc == 0, again.output[-6000:]
        assert set(again.recap()) == {"p6a", "p6b", "p6db"}, again.output[-3000:]
        assert not any(again.changed().values()), again.output[-6000:]
        assert password not in again.output
