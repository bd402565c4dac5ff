"""What of ssh's options the in-process probe honours, read as ssh reads them."""

from __future__ import annotations

from acmefleet.fleet.inventory import FleetHost
from acmefleet.fleet.settings import ssh_options
from acmefleet.fleet.ssh_probe import GLOBAL_KNOWN_HOSTS, USER_KNOWN_HOSTS, parse_ssh_options


def test_the_inventorys_options_as_settings_py_builds_them() -> None:
    host = FleetHost(
        "web1",
        "192.0.2.11",
        "lego_nginx",
        ("web1.example.net",),
        "private",
        "example",
        variables={
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/srv/kh -o ConnectTimeout=3",
            "ansible_ssh_private_key_file": "~/.ssh/fleet_ed25519",
        },
    )
    settings = parse_ssh_options(ssh_options(host))
    assert settings.user_known_hosts == ("/srv/kh",)
    assert settings.global_known_hosts == GLOBAL_KNOWN_HOSTS
    assert settings.identity_files == ("~/.ssh/fleet_ed25519",)
    assert settings.connect_timeout == 3.0  # the inventory's, given first, wins (as in ssh)
    assert settings.strict == "yes"
    assert settings.unsupported == ()


def test_defaults_and_spellings() -> None:
    settings = parse_ssh_options([])
    assert settings.user_known_hosts == USER_KNOWN_HOSTS
    assert settings.strict == "yes"
    assert not settings.identities_only
    assert parse_ssh_options(["-o", "IdentitiesOnly=yes"]).identities_only
    spelled = parse_ssh_options(
        [
            "-oUserKnownHostsFile=/a /b",
            "-o",
            "StrictHostKeyChecking accept-new",
            "-i/k1",
            "-o",
            "IdentityFile=/k2",
            "-o",
            "GlobalKnownHostsFile=/g",
        ]
    )
    assert spelled.user_known_hosts == ("/a", "/b")
    assert spelled.global_known_hosts == ("/g",)
    assert spelled.strict == "accept-new"
    assert spelled.identity_files == ("/k1", "/k2")


def test_options_that_redirect_the_connection_are_recorded() -> None:
    settings = parse_ssh_options(["-J", "bastion", "-o", "ProxyCommand=nc %h %p", "-p", "2222"])
    assert settings.unsupported == ("ProxyJump (-J)", "proxycommand", "-p")
