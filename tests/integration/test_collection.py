"""The Ansible collection on the controller: plugins against a real server, and packaging.

The EAB module and lookup mint and revoke credentials through the live console API (check
mode changes nothing); the TLS module checks the certificate that server serves; the
callback writes its summary; the inventory plugin refuses bad fleet files;
``ansible-galaxy collection build`` makes a collection that installs and resolves by FQCN;
``acmefleet rollout`` answers a bad inventory with exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.acmefleet_server import AcmefleetServer
from tests.support.ansible_cli import ansible
from tests.support.tls_certs import make_serving_cert

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def module_args(server: AcmefleetServer, token_file: Path, **extra: str) -> str:
    values = {
        "api_url": server.base_url,
        "token_file": str(token_file),
        "ca_bundle": str(server.ca_bundle),
        **extra,
    }
    return " ".join(f"{k}={v}" for k, v in values.items())


@pytest.fixture(scope="module")
def token_file(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("token") / "admin-token"
    path.write_text(acmefleet.admin_token)
    path.chmod(0o600)
    return path


def eab_module(args: str, *options: str) -> subprocess.CompletedProcess[str]:
    """The module acmefleet.fleet.eab_credential, run ad hoc on the controller."""
    return ansible(
        "ansible",
        "localhost",
        "-c",
        "local",
        *options,
        "-m",
        "acmefleet.fleet.eab_credential",
        "-a",
        args,
    )


def test_eab_module_mints_revokes_and_respects_check_mode(
    acmefleet: AcmefleetServer, token_file: Path
) -> None:
    before = acmefleet.count("eab_credentials")
    dry = eab_module(module_args(acmefleet, token_file, org="acme", endpoint="private"), "--check")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert acmefleet.count("eab_credentials") == before
    minted = eab_module(
        module_args(acmefleet, token_file, org="acme", endpoint="private", days="1"), "-o"
    )
    assert minted.returncode == 0, minted.stdout + minted.stderr
    result = json.loads(minted.stdout.split("=>", 1)[1])
    assert result["changed"] and result["kid"] and result["hmac_key"]
    acmefleet.minted_secrets.append(result["hmac_key"])
    assert acmefleet.count("eab_credentials", kid=result["kid"]) == 1
    revoked = eab_module(
        module_args(acmefleet, token_file, kid=result["kid"], state="absent"), "-o"
    )
    assert revoked.returncode == 0 and '"status": "revoked"' in revoked.stdout
    again = eab_module(module_args(acmefleet, token_file, kid=result["kid"], state="absent"), "-o")
    assert again.returncode == 0 and '"changed": false' in again.stdout
    refused = eab_module(module_args(acmefleet, token_file, org="nobody", endpoint="private"))
    assert refused.returncode != 0 and "no organisation" in refused.stdout
    assert acmefleet.admin_token not in refused.stdout + refused.stderr


def test_tls_certificate_module_checks_what_the_server_serves(
    acmefleet: AcmefleetServer, tmp_path: Path
) -> None:
    """The module as Ansible ships it (its module_utils tls_probe in the payload)."""
    other = make_serving_cert(tmp_path / "other", prefix="other")
    base = f"address=127.0.0.1 port={acmefleet.port} server_name=localhost"
    good = ansible(
        "ansible",
        "localhost",
        "-c",
        "local",
        "-o",
        "-m",
        "acmefleet.fleet.tls_certificate",
        "-a",
        f"{base} ca_bundle={acmefleet.ca_bundle} expected_issuer=acmefleet",
    )
    assert good.returncode == 0, good.stdout + good.stderr
    result = json.loads(good.stdout.split("=>", 1)[1])
    assert result["verified"] and result["problems"] == [] and "localhost" in result["names"]
    refused = ansible(
        "ansible",
        "localhost",
        "-c",
        "local",
        "-o",
        "-m",
        "acmefleet.fleet.tls_certificate",
        "-a",
        f"{base} ca_bundle={other.ca_bundle}",
    )
    assert refused.returncode != 0
    assert "chain does not verify for localhost: unable to get local issuer" in refused.stdout


def test_lookup_and_summary_callback(
    acmefleet: AcmefleetServer, token_file: Path, tmp_path: Path
) -> None:
    playbook = tmp_path / "lookup.yml"
    playbook.write_text(f"""---
- name: Lookup and summary
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Mint through the lookup
      ansible.builtin.set_fact:
        minted: "{{{{ lookup('acmefleet.fleet.eab', api_url='{acmefleet.base_url}',
                     token_file='{token_file}', ca_bundle='{acmefleet.ca_bundle}',
                     org='acme', endpoint='public') }}}}"
      no_log: true
    - name: Record an enrolment
      ansible.builtin.set_fact:
        acmefleet_enrolment:
          stack: test
          names: [x.example.com]
          kid: "{{{{ minted.kid }}}}"
""")
    summary = tmp_path / "summary.json"
    run = ansible(
        "ansible-playbook",
        "-i",
        "localhost,",
        str(playbook),
        env={
            "ANSIBLE_CALLBACKS_ENABLED": "acmefleet.fleet.enrolment_summary",
            "ACMEFLEET_ENROLMENT_SUMMARY": str(summary),
        },
    )
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads(summary.read_text())
    host = document["hosts"][0]
    assert host["host"] == "localhost" and host["status"] == "ok"
    assert acmefleet.count("eab_credentials", kid=host["kid"], endpoint="public") == 1


def test_inventory_plugin_refuses_bad_fleets(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fleet.yml"
    bad.write_text(
        "plugin: acmefleet.fleet.fleet\nhosts:\n  - name: w1\n    stack: iis\n"
        "    names: [w1.example.com]\n"
    )
    run = subprocess.run(
        [str(BIN / "acmefleet"), "rollout", "-i", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("error: ") and "stack" in run.stderr
    missing = subprocess.run(
        [str(BIN / "acmefleet"), "rollout", "-i", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    graph = ansible("ansible-inventory", "-i", str(ROOT / "inventory/example.fleet.yml"), "--graph")
    assert "@certbot_apache" in graph.stdout and "web1" in graph.stdout


def test_the_replica_example_names_the_servers_database_and_balancer() -> None:
    """inventory/replicas/: the plugin's acme_databases and acme_balancers groups, and the
    hosts a roll-out deploys the server onto (acme_server.yml's three plays)."""
    from acmefleet.fleet.inventory import load_fleet

    fleet = load_fleet(ROOT / "inventory" / "replicas" / "replicas.fleet.yml")
    assert fleet.servers == ("acme1", "acme2")
    assert fleet.server_support == ("db1", "lb1")
    assert [h.name for h in fleet.hosts] == ["web1", "web2"]
    for replica in fleet.servers:
        variables = fleet.hostvars[replica]
        assert variables["acme_server_replicas"] == ["acme1", "acme2"]
        assert variables["acme_server_database_host"] == "db1"
    graph = ansible("ansible-inventory", "-i", str(ROOT / "inventory/replicas"), "--graph")
    assert "@acme_databases:\n  |  |--db1" in graph.stdout.replace("\r", "")
    assert "@acme_balancers:\n  |  |--lb1" in graph.stdout.replace("\r", "")


def test_ansible_commands_of_the_collection_print_no_dsa_warning() -> None:
    """ansible-core's import of cryptography's DSA module warns on every command: the
    environment the runner and the inventory reader give Ansible silences that one line."""
    from acmefleet.fleet.inventory import collection_environment

    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "default", **collection_environment()},
    )
    assert run.stdout.startswith("ansible-playbook [core "), run.stdout
    assert "DSA" not in run.stderr, run.stderr


def test_collection_builds_installs_and_resolves(tmp_path: Path) -> None:
    built = ansible(
        "ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(tmp_path)
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = next(tmp_path.glob("acmefleet-fleet-*.tar.gz"))
    target = tmp_path / "collections"
    installed = ansible(
        "ansible-galaxy", "collection", "install", "--force", str(tarball), "-p", str(target)
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = target / "ansible_collections" / "acmefleet" / "fleet"
    assert (root / "roles" / "certbot_apache" / "meta" / "argument_specs.yml").exists()
    assert not (root / "acmefleet").exists() and not (root / "tests").exists()
    doc = ansible(
        "ansible-doc",
        "acmefleet.fleet.eab_credential",
        env={"ANSIBLE_COLLECTIONS_PATH": str(target)},
        cwd=tmp_path,
    )
    assert doc.returncode == 0 and str(target) in doc.stdout, doc.stdout + doc.stderr
