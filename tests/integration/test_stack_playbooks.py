"""The playbooks and the inventory plugin read the stack registry (no hosts needed).

enroll.yml and prepare.yml parse on a controller that has no ansible.windows (the Windows
roles are included dynamically, only for Windows hosts); their plays target the registry's
stacks by OS family; the inventory plugin makes one group per stack and the fleet_linux /
fleet_windows groups; a stack role's account check runs alone, in check mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from acmefleet.fleet import stacks
from tests.support.ansible_cli import ansible

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory" / "example.fleet.yml"
# Only this checkout's collection: site-packages' ansible_collections (ansible.windows) hidden.
WITHOUT_WINDOWS = {
    "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
    "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
}


def test_ansible_windows_is_really_hidden(tmp_path: Path) -> None:
    playbook = tmp_path / "windows.yml"
    playbook.write_text(
        "- hosts: all\n  tasks:\n    - ansible.windows.win_stat:\n        path: C:\\x\n"
    )
    checked = ansible(
        "ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook), env=WITHOUT_WINDOWS
    )
    assert checked.returncode != 0, "ansible.windows still resolves: the next test proves nothing"


@pytest.mark.parametrize(
    "playbook", ["enroll.yml", "prepare.yml", "rollout_start.yml", "verify.yml"]
)
def test_playbooks_parse_without_ansible_windows(playbook: str) -> None:
    checked = ansible(
        "ansible-playbook",
        "--syntax-check",
        "-i",
        str(EXAMPLE),
        str(ROOT / "playbooks" / playbook),
        env=WITHOUT_WINDOWS,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_enrol_plays_target_the_registrys_stacks_by_os_family() -> None:
    listed = ansible(
        "ansible-playbook",
        "--list-hosts",
        "-i",
        str(EXAMPLE),
        str(ROOT / "playbooks" / "enroll.yml"),
        env=WITHOUT_WINDOWS,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    patterns = [
        line.split("(", 1)[1].split(")", 1)[0]
        for line in listed.stdout.splitlines()
        if line.strip().startswith("play #")
    ]
    registry = stacks.load().values()
    linux = ":".join(s.name for s in registry if not s.is_windows)
    # enrol Linux hosts, read what they serve, enrol Windows hosts
    assert patterns == [linux, linux, ":".join(s.name for s in registry if s.is_windows)]


def test_a_caller_that_verifies_itself_skips_the_read_play_whole() -> None:
    """acmefleet rollout passes -e acmefleet_verify_on_host=false: the play that reads what
    each host serves matches no host, so no host spends a task (a forked worker) on it."""
    listed = ansible(
        "ansible-playbook",
        "--list-hosts",
        "-i",
        str(EXAMPLE),
        "-e",
        '{"acmefleet_verify_on_host": false}',
        str(ROOT / "playbooks" / "enroll.yml"),
        env=WITHOUT_WINDOWS,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    plays = listed.stdout.split("play #")[1:]
    assert [p.split(": ", 1)[1].split("\t", 1)[0] for p in plays] == [
        "Enrol Linux web hosts with single-use EAB credentials",
        "Read what the Linux web hosts serve",
        "Enrol Windows web hosts with single-use EAB credentials",
    ]
    assert "hosts (0)" in plays[1] and "hosts (3)" in plays[0], listed.stdout


def test_inventory_plugin_groups_stacks_by_registry(tmp_path: Path) -> None:
    fleet = tmp_path / "t.fleet.yml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "plugin": "acmefleet.fleet.fleet",
                "defaults": {"org": "o", "endpoint": "private", "email": "ops@example.com"},
                "hosts": [
                    {"name": "n1", "stack": "certbot_nginx", "names": ["n1.example"]},
                    {"name": "w1", "stack": "win_acme_iis", "names": ["w1.example"]},
                ],
            }
        )
    )
    listed = ansible("ansible-inventory", "-i", str(fleet), "--list")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    registry = stacks.load()
    assert data["certbot_nginx"]["hosts"] == ["n1"]
    assert data["win_acme_iis"]["hosts"] == ["w1"]
    linux = {name for name, stack in registry.items() if not stack.is_windows}
    assert set(data["fleet_linux"]["children"]) == linux
    assert set(data["fleet_windows"]["children"]) == set(registry) - linux
    assert set(data["fleet"]["children"]) == {"fleet_linux", "fleet_windows"}


def test_unknown_stack_names_the_registry_stacks(tmp_path: Path) -> None:
    fleet = tmp_path / "bad.fleet.yml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "plugin": "acmefleet.fleet.fleet",
                "hosts": [{"name": "x", "stack": "caddy", "names": ["x.example"]}],
            }
        )
    )
    listed = ansible("ansible-inventory", "-i", str(fleet), "--list")
    assert "certbot_nginx" in listed.stderr, listed.stderr


@pytest.mark.parametrize(
    "stack", [s for s in stacks.load().values() if not s.is_windows], ids=lambda s: s.name
)
def test_account_entry_point_runs_alone_in_check_mode(stack: stacks.Stack, tmp_path: Path) -> None:
    """What enroll.yml asks before minting: no account here (nothing under a fresh path)."""
    playbook = tmp_path / "account.yml"
    variables = {
        "acmefleet_directory_url": "https://acme.example.net:8555/acme/private/directory",
        "acmefleet_email": "ops@example.com",
        "lego_nginx_path": str(tmp_path / "lego"),
    }
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "account check",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": variables,
                    "tasks": [
                        {
                            "name": "check",
                            "ansible.builtin.include_role": {
                                "name": stack.role,
                                "tasks_from": "account.yml",
                            },
                        },
                        {
                            "name": "show",
                            "ansible.builtin.debug": {"var": "acmefleet_account_exists"},
                        },
                    ],
                }
            ]
        )
    )
    ran = ansible(
        "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=/usr/bin/python3",
        "--check",
        str(playbook),
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert '"acmefleet_account_exists": false' in ran.stdout, ran.stdout
