"""enroll.yml on real hosts: check mode, each role tag alone, and an endpoint change.

One server and two web hosts (certbot_nginx, the stack added through the registry, and
lego_nginx, whose accounts two endpoints of one server share) are used by every test of this
module in order:

1. ``--check`` on fresh hosts: succeeds, mints no credential, installs nothing.
2. every step tag the role README documents, alone and in step order: each run succeeds and
   together they enrol the host; credentials minted by runs that stop short of the
   registration are revoked; a full run afterwards changes nothing and mints nothing.
3. ``--check`` on the enrolled hosts: no change.
4. the endpoint changes (private -> public): each host gets a fresh credential, a new account
   with the public endpoint and a certificate from the public CA; the run after changes nothing.
5. lego's e-mail changes: a fresh credential and a new account, which the renewal unit uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from acmefleet.console.client import RemoteBackend
from acmefleet.fleet import tls
from acmefleet.fleet.inventory import load_fleet
from acmefleet.lab.hosts import Lab, LabHost
from tests.hosts.fleetlab import PlaybookRun, ansible_playbook, lab_fleet, ssh

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(3600)]
HOSTS = [("s5srv", 80, None), ("s5certbot", 81, "certbot_nginx"), ("s5lego", 82, "lego_nginx")]
ROLE_DIR = Path(__file__).resolve().parents[2] / "roles"
# The role steps in the order main.yml runs them (site/http twice: before and after the
# certificate).
STEP_ORDER = {
    "certbot_nginx": [
        "install",
        "trust",
        "site",
        "account",
        "certificate",
        "site",
        "renewal",
        "verify",
    ],
    "lego_nginx": ["install", "trust", "http", "certificate", "tls", "http", "renewal", "verify"],
}


@dataclass
class Fleet:
    lab: Lab
    hosts: dict[str, LabHost]
    inventory: Path
    extra: list[str]
    api: RemoteBackend
    bundle: Path

    def enroll(self, *options: str) -> PlaybookRun:
        return ansible_playbook("enroll.yml", self.inventory, *self.extra, *options)

    def eabs(self) -> list[dict[str, object]]:
        return list(self.api.list_eab())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("stacks")
    with lab_fleet(workdir, HOSTS) as (lab, hosts, inventory):
        controller = workdir / "controller"
        token_file, bundle = controller / "s5srv-admin-token", controller / "s5srv-ca-bundle.pem"
        deployed = ansible_playbook(
            "acme_server.yml",
            inventory,
            "-e",
            f"acme_server_admin_token_dest={token_file}",
            "-e",
            f"acme_server_ca_bundle_dest={bundle}",
        )
        assert deployed.rc == 0, deployed.output[-6000:]
        api_url = f"https://{hosts['s5srv'].address}:8555"
        extra = [
            "-e",
            f"acmefleet_api_url={api_url}",
            "-e",
            f"acmefleet_console_token_file={token_file}",
            "-e",
            f"acmefleet_ca_bundle={bundle}",
        ]
        with RemoteBackend(api_url, token_file.read_text().strip(), ca_bundle=bundle) as api:
            yield Fleet(lab, hosts, inventory, extra, api, bundle)


def web_hosts() -> list[tuple[str, str]]:
    return [(name, stack) for name, _, stack in HOSTS if stack is not None]


def test_check_mode_on_fresh_hosts_mints_and_installs_nothing(fleet: Fleet) -> None:
    before = fleet.eabs()
    run = fleet.enroll("--check")
    assert run.rc == 0, run.output[-8000:]
    assert "check mode: would register" in run.output
    assert fleet.eabs() == before, "check mode minted a credential"
    for name, _ in web_hosts():
        probe = ssh(fleet.lab, fleet.hosts[name], "dpkg -s nginx >/dev/null 2>&1; echo $?")
        assert probe.stdout.strip() != "0", f"check mode installed nginx on {name}"


def test_each_documented_tag_alone_then_a_full_run_changes_nothing(fleet: Fleet) -> None:
    for name, stack in web_hosts():
        readme = (ROLE_DIR / stack / "README.md").read_text()
        steps = readme.split("## What it does", 1)[1].split("\n## ", 1)[0]
        documented = set(re.findall(rf"`{stack}_([a-z]+)`", steps))
        assert documented == set(STEP_ORDER[stack]), f"{stack}: README tags {documented}"
        for step in STEP_ORDER[stack]:
            run = fleet.enroll("--limit", name, "--tags", f"{stack}_{step}")
            assert run.rc == 0, f"--tags {stack}_{step}:\n" + run.output[-8000:]
            assert run.recap()[name]["failed"] == 0
    served = tls.probe_all(list(load_fleet(fleet.inventory).hosts), fleet.bundle)
    for name, _ in web_hosts():
        assert served[name].verified, f"{name}: {served[name].problem}"
    # Runs that stopped short of the registration minted a credential each: none is left
    # unused, one per host is bound.
    eabs = fleet.eabs()
    assert not [e for e in eabs if e["status"] == "unused"], eabs
    assert len([e for e in eabs if e["status"] == "bound"]) == len(web_hosts()), eabs
    again = fleet.enroll()
    assert again.rc == 0, again.output[-8000:]
    assert all(again.changed()[name] == 0 for name, _ in web_hosts()), again.output[-8000:]
    assert len(fleet.eabs()) == len(eabs), "a full run on enrolled hosts minted a credential"


def test_check_mode_on_enrolled_hosts_changes_nothing(fleet: Fleet) -> None:
    before = fleet.eabs()
    run = fleet.enroll("--check")
    assert run.rc == 0, run.output[-8000:]
    assert all(run.changed()[name] == 0 for name, _ in web_hosts()), run.output[-8000:]
    assert fleet.eabs() == before


def test_an_endpoint_change_gets_a_fresh_credential_account_and_certificate(fleet: Fleet) -> None:
    document = yaml.safe_load(fleet.inventory.read_text())
    document["defaults"]["endpoint"] = "public"
    fleet.inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    accounts_before = {a["id"] for a in fleet.api.list_accounts()}
    run = fleet.enroll()
    assert run.rc == 0, run.output[-8000:]
    eabs = fleet.eabs()
    public = [e for e in eabs if e["endpoint"] == "public"]
    assert len(public) == len(web_hosts()), eabs
    assert all(e["status"] == "bound" for e in public), public
    new_accounts = [a for a in fleet.api.list_accounts() if a["id"] not in accounts_before]
    assert sorted(a["endpoint"] for a in new_accounts) == ["public"] * len(web_hosts())
    # What each host serves now is a certificate of the public endpoint, from the public CA,
    # issued to one of the new accounts.
    served = tls.probe_all(list(load_fleet(fleet.inventory).hosts), fleet.bundle)
    by_serial = {
        str(c["serial"]).lower().lstrip("0"): c
        for c in fleet.api.list_certificates(endpoint="public")
    }
    public_accounts = {a["id"] for a in new_accounts}
    for name, _ in web_hosts():
        assert served[name].verified, f"{name}: {served[name].problem}"
        cert = by_serial.get((served[name].serial or "").lower().lstrip("0"))
        assert cert is not None, f"{name} serves {served[name].serial}, not a public certificate"
        assert cert["ca"] == "public" and cert["account_id"] in public_accounts, cert
    again = fleet.enroll()
    assert again.rc == 0, again.output[-8000:]
    assert all(again.changed()[name] == 0 for name, _ in web_hosts()), again.output[-8000:]
    assert len(fleet.eabs()) == len(eabs)


def test_a_lego_email_change_gets_a_fresh_credential_and_account(fleet: Fleet) -> None:
    """lego keys its account by e-mail too: the renewal must not go on with the old one."""
    document = yaml.safe_load(fleet.inventory.read_text())
    for host in document["hosts"]:
        if host["name"] == "s5lego":
            host["email"] = "web@lab.example"
    fleet.inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    eabs_before = fleet.eabs()
    accounts_before = {a["id"] for a in fleet.api.list_accounts()}
    run = fleet.enroll("--limit", "s5lego")
    assert run.rc == 0, run.output[-8000:]
    minted = [e for e in fleet.eabs() if e not in eabs_before and e["status"] == "bound"]
    assert len(minted) == 1, fleet.eabs()
    new_accounts = [a for a in fleet.api.list_accounts() if a["id"] not in accounts_before]
    assert len(new_accounts) == 1 and "mailto:web@lab.example" in str(new_accounts[0]["contact"])
    unit = ssh(fleet.lab, fleet.hosts["s5lego"], "cat /etc/systemd/system/lego-renew.service")
    assert "--email web@lab.example" in unit.stdout, unit.stdout
    again = fleet.enroll("--limit", "s5lego")
    assert again.rc == 0, again.output[-8000:]
    assert again.changed()["s5lego"] == 0, again.output[-8000:]
