"""The acme_server role as users get it, onto a lab host, with no checkout involved.

The controller is a virtualenv with ``pip install <wheel>[fleet]``; Ansible runs from a
temporary directory without ansible.cfg and plays ``acmefleet.fleet.acme_server`` by FQCN.
First with the collection installed from the tarball of scripts/build-collection (its role
deploys the wheel shipped inside it), then with the collection the wheel put into
site-packages (no wheel inside: the role fetches acmefleet from the controller's package
index, here given the freshly built wheel as an extra find-links directory). The server
answers /health with its CA bundle; the admin token lands next to the inventory (0600, in a
0700 directory), outside both installed collections, and in no output.
"""

from __future__ import annotations

import os
import re
import ssl
import stat
from pathlib import Path

import httpx
import pytest

from acmefleet.console.client import RemoteBackend
from tests.hosts.fleetlab import lab_fleet, require_root
from tests.support.install_paths import (
    build_collection,
    clean_env,
    galaxy_install,
    pip_controller,
    run,
)

pytestmark = pytest.mark.hosts
HOSTS = [("i9srv", 88, None)]
SERVER = "i9srv"


def play(tools: Path, collections: Path, inventory: Path, cwd: Path, **env: str) -> tuple[int, str]:
    environment = {
        **clean_env(collections, tools),
        # What a user's ansible.cfg says; there is none here.
        "ANSIBLE_INVENTORY_ENABLED": "acmefleet.fleet.fleet,ansible.builtin.yaml",
        "ANSIBLE_PIPELINING": "True",
        **env,
    }
    result = run(
        [
            str(tools / "ansible-playbook"),
            "-v",
            "-i",
            str(inventory),
            "acmefleet.fleet.acme_server",
            "-e",
            f"acme_server_wheel_cache={cwd / 'wheels'}",
        ],
        cwd,
        environment,
        timeout=1500,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.timeout(2400)
def test_server_from_the_built_collection_and_from_the_pip_controller(tmp_path: Path) -> None:
    require_root()
    dist = tmp_path / "dist"
    wheel, tarball = build_collection(dist)
    venv = pip_controller(wheel)
    tools = venv / "bin"
    galaxy = tmp_path / "galaxy"
    galaxy_install(tarball, galaxy, tools, tmp_path)
    installed = (galaxy / "ansible_collections" / "acmefleet" / "fleet").resolve()
    work = tmp_path / "work"
    work.mkdir()
    with lab_fleet(tmp_path / "fleet", HOSTS) as (_, hosts, inventory):
        rc, first = play(tools, galaxy, inventory, work)
        assert rc == 0, first[-8000:]
        assert re.search(r"source\W+shipped", first), first[-4000:]
        assert f'"path": "{installed}/roles/acme_server"' in first  # the tarball's role

        secrets = inventory.parent / ".acmefleet"
        token_file = secrets / f"{SERVER}-admin-token"
        bundle = secrets / f"{SERVER}-ca-bundle.pem"
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        for place in (installed, venv.resolve()):
            assert not token_file.resolve().is_relative_to(place)
        assert not any(installed.rglob("*admin-token"))
        token = token_file.read_text().strip()
        assert token and token not in first

        base = f"https://{hosts[SERVER].address}:8555"
        trust = ssl.create_default_context(cafile=str(bundle))
        health = httpx.get(f"{base}/health", verify=trust, timeout=30)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        with RemoteBackend(base, token, ca_bundle=bundle) as api:
            assert any(org["name"] for org in api.list_orgs())

        # The pip-installed collection: no wheel inside, so the package index is asked.
        empty = tmp_path / "no-collections"
        empty.mkdir()
        links = f"{dist} {os.environ.get('PIP_FIND_LINKS', '')}".strip()
        rc, second = play(tools, empty, inventory, work, PIP_FIND_LINKS=links)
        assert rc == 0, second[-8000:]
        assert re.search(r"source\W+index", second), second[-4000:]
        assert re.search(
            rf'"path": "{re.escape(str(venv))}/lib/python[0-9.]+/site-packages/ansible_collections',
            second,
        )
        assert re.search(rf"{SERVER}\s*: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0", second)
        assert token_file.read_text().strip() == token  # initialised once, not again
        assert token not in second
        health = httpx.get(f"{base}/health", verify=trust, timeout=30)
        assert health.status_code == 200
