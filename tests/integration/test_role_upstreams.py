"""The acme_server role's upstream CA settings (issue 16 item 5), run by ansible-playbook on
this machine against a real data directory and Debian's pebble as the upstream (EAB
required).

The role's own task files run as the role runs them (configure.yml: the template checked by
the server's parser, upstreams.yml: the secrets written, the account registered): with the
role's defaults and vars, on localhost, as root. The role's handler restarts a systemd unit;
this play has none, so its handler of that name records the notification instead.

What is shown: the configuration names the secret files and never holds a secret; the HMAC
and TSIG secrets are 0600 files of the service user; the first run registers the account at
pebble, a second run changes nothing; the secrets never reach Ansible's output, even at -vvv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmefleet.config import load_config
from tests.support.ansible_cli import ROOT, ansible
from tests.support.pebble import PebbleServer, make_eab_keys, new_eab_key

pytestmark = pytest.mark.integration

ROLE = ROOT / "roles" / "acme_server"
TSIG_SECRET = new_eab_key(32) + "="  # a base64 TSIG secret, unique to this run


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleServer]:
    with PebbleServer(tmp_path_factory.mktemp("pebble"), make_eab_keys(1)) as server:
        yield server


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("role-upstreams")
    data = root / "data"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "acmefleet"),
            "server",
            "init",
            "--data-dir",
            str(data),
            "--pki-base-url",
            "http://pki.example.net:8556",
            "--admin-token-file",
            str(root / "admin-token"),
        ],
        check=True,
        capture_output=True,
    )
    return data


def _playbook(directory: Path) -> Path:
    play = [
        {
            "name": "The acme_server role's configuration and upstream tasks",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "tasks": [
                {"ansible.builtin.include_tasks": str(ROLE / "tasks" / "upstream_checks.yml")},
                {"ansible.builtin.include_tasks": str(ROLE / "tasks" / "configure.yml")},
                {"ansible.builtin.include_tasks": str(ROLE / "tasks" / "upstreams.yml")},
            ],
            "handlers": [
                {
                    "name": "Restart acmefleet",
                    "ansible.builtin.debug": {"msg": "the role would restart acmefleet here"},
                }
            ],
        }
    ]
    path = directory / "play.yml"
    path.write_text(json.dumps(play))
    # The role's template, found beside the play as it is beside the role's tasks.
    templates = directory / "templates"
    if not templates.exists():
        templates.symlink_to(ROLE / "templates")
    return path


def _variables(directory: Path, data: Path, pebble: PebbleServer) -> Path:
    values = {
        "ansible_python_interpreter": sys.executable,
        "ansible_become_method": "su",  # root to root, no sudo needed on this machine
        "acme_server_data_dir": str(data),
        "acme_server_venv": str(Path(sys.executable).parent.parent),
        "acme_server_user": "root",
        "acme_server_group": "root",
        "acme_server_base_url": "https://acme.example.net:8555",
        "acme_server_pki_base_url": "http://pki.example.net:8556",
        "__acme_server_unit_before": {"stat": {"exists": True}},
        "acme_server_endpoints": [
            {"name": "private", "type": "private", "ca": "private", "profiles": ["private-server"]},
            {
                "name": "public",
                "type": "public",
                "ca": "public",
                "profiles": ["public-dv"],
                "upstream": "pebble",
            },
        ],
        "acme_server_upstreams": {
            "pebble": {
                "directory_url": pebble.directory_url,
                "ca_bundle": Path(pebble.ca_bundle).read_text(),
                "eab_kid": "kid-1",
                "eab_hmac_key": pebble.eab_keys["kid-1"],
                "contact": ["mailto:pki@example.org"],
                "retry_for_seconds": 600,
                "dns01": {
                    "server": "127.0.0.1",
                    "port": 5353,
                    "key_name": "acme-update",
                    "secret": TSIG_SECRET,
                },
            }
        },
    }
    path = directory / "vars.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return path


def _run(directory: Path, data: Path, pebble: PebbleServer, *extra: str) -> str:
    done = ansible(
        "ansible-playbook",
        "-i",
        "localhost,",
        "-e",
        f"@{_variables(directory, data, pebble)}",
        _playbook(directory),
        "-vvv",
        *extra,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    for secret in (pebble.eab_keys["kid-1"], TSIG_SECRET):
        at = output.find(secret)
        assert at < 0, f"a secret reached Ansible's output:\n{output[max(0, at - 3000) : at + 200]}"
    return output


def _changed(output: str) -> int:
    recap = output[output.rindex("PLAY RECAP") :]
    return int(recap.split("changed=")[1].split()[0])


def test_the_role_writes_the_secrets_and_registers_the_account_once(
    data_dir: Path, pebble: PebbleServer, tmp_path: Path
) -> None:
    first = _run(tmp_path, data_dir, pebble)
    assert "account registered" in first, first[-4000:]
    config = load_config(data_dir)
    upstream = config.upstreams["pebble"]
    assert config.endpoints["public"].upstream == "pebble"
    assert upstream.eab_hmac_key_file == Path("upstreams/pebble/eab.hmac")
    assert upstream.dns01 is not None and upstream.dns01.port == 5353
    text = (data_dir / "config.toml").read_text()
    assert pebble.eab_keys["kid-1"] not in text and TSIG_SECRET not in text
    folder = data_dir / "upstreams" / "pebble"
    for name, mode in (("eab.hmac", 0o600), ("tsig.secret", 0o600), ("account.key", 0o600)):
        assert (folder / name).stat().st_mode & 0o777 == mode, name
    assert (folder / "eab.hmac").read_text().strip() == pebble.eab_keys["kid-1"]
    assert (folder / "tsig.secret").read_text().strip() == TSIG_SECRET
    assert folder.stat().st_mode & 0o777 == 0o700

    second = _run(tmp_path, data_dir, pebble)
    assert _changed(second) == 0, second[-4000:]
    assert "account in use" in second

    checked = _run(tmp_path, data_dir, pebble, "--check", "--diff")
    assert _changed(checked) == 0, checked[-4000:]
