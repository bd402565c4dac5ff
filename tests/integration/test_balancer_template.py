"""The acme_balancer role's haproxy.cfg, rendered by Ansible's own template module: each
replica's address as HAProxy reads it, IPv6 ones in brackets (else HAProxy would take the
address's last group for the port's place). Debian's haproxy itself checks the rendered file
on the lab's balancer host (tests/hosts/test_replicas.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support.ansible_cli import ROOT, ansible

pytestmark = pytest.mark.integration

TEMPLATE = ROOT / "roles" / "acme_balancer" / "templates" / "haproxy.cfg.j2"
REPLICAS = {"r1": "10.0.0.1", "r2": "2001:db8::2", "r3": "[2001:db8::3]", "r4": "acme4.example"}


def test_replica_addresses_are_written_as_haproxy_reads_them(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        + "".join(f"{name} ansible_host={address}\n" for name, address in REPLICAS.items())
    )
    values = {
        "acme_balancer_servers": list(REPLICAS),
        "acme_balancer_bind": "*:8555",
        "acme_balancer_pki_bind": "*:8556",
        "acme_balancer_server_name": "replicas.acmefleet.internal",
        "acme_balancer_server_port": 8555,
        "acme_balancer_server_pki_port": 8556,
        "acme_balancer_maxconn": 2000,
        "acme_balancer_check_interval": "2s",
        "acme_balancer_check_fall": 3,
        "acme_balancer_check_rise": 2,
        "acme_balancer_timeout_connect": "5s",
        "acme_balancer_timeout_client": "60s",
        "acme_balancer_timeout_server": "60s",
        "acme_balancer_timeout_http_request": "10s",
        "__acme_balancer_ca": "/etc/haproxy/ca.pem",
        "__acme_balancer_crt": "/etc/haproxy/crt.pem",
    }
    rendered = tmp_path / "haproxy.cfg"
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": values,
            "tasks": [
                {
                    "ansible.builtin.template": {
                        "src": str(TEMPLATE),
                        "dest": str(rendered),
                        "mode": "0644",
                    }
                }
            ],
        }
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps(play))
    done = ansible("ansible-playbook", "-i", str(inventory), str(playbook))
    assert done.returncode == 0, done.stdout + done.stderr
    servers = [ln.split()[1:3] for ln in rendered.read_text().splitlines() if "    server " in ln]
    expected = {
        "r1": "10.0.0.1",
        "r2": "[2001:db8::2]",
        "r3": "[2001:db8::3]",
        "r4": "acme4.example",
    }
    assert servers == [
        [name, f"{address}:{port}"] for port in (8555, 8556) for name, address in expected.items()
    ]
