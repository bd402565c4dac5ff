"""Orchestrator rules without hosts: waves, failure budgets, preflight verdicts, state."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from acmefleet.fleet.inventory import FleetHost
from acmefleet.fleet.preflight import _classify
from acmefleet.fleet.state import HostOutcome, RolloutState
from acmefleet.fleet.waves import (
    BudgetSpecError,
    WaveSpecError,
    cumulative_targets,
    failure_budget,
    parse_sizes,
    split,
)

HOST = FleetHost("web1", "10.77.0.11", "lego_nginx", ("web1.example.com",), "private", "org")


@pytest.mark.parametrize(
    ("spec", "total", "sizes"),
    [
        ("1,10%,100%", 20, [1, 1, 18]),
        ("1,10%,100%", 10, [1, 9]),
        ("2,50%", 10, [2, 3, 5]),
        ("100%", 7, [7]),
        ("1,100%", 1, [1]),
        ("5", 3, [3]),
    ],
)
def test_waves_cover_every_host_once(spec: str, total: int, sizes: list[int]) -> None:
    waves = split(list(range(total)), spec)
    assert [len(w) for w in waves] == sizes
    assert [h for w in waves for h in w] == list(range(total))
    assert cumulative_targets(parse_sizes(spec), total)[-1] == total


@pytest.mark.parametrize("spec", ["", "0", "x", "150%", "1,,%"])
def test_bad_wave_specs(spec: str) -> None:
    with pytest.raises(WaveSpecError):
        parse_sizes(spec)


def test_failure_budgets() -> None:
    assert failure_budget(None, 10) == 0
    assert failure_budget("2", 10) == 2
    assert failure_budget("25%", 10) == 2
    with pytest.raises(BudgetSpecError):
        failure_budget("some", 10)


def probe(rc: int, stdout: str = "", stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["ssh"], rc, stdout, stderr)


@pytest.mark.parametrize(
    ("result", "ok", "problem"),
    [
        (probe(0, "0\n3.11.2\ndebian 12\nroot\n"), True, None),
        (probe(0, "1000\n3.11.2\ndebian 12\nsudo-ok\n"), True, None),
        (probe(0, "1000\n3.13.5\ndebian 13\nsudo-ok\n"), True, None),
        (probe(0, "1000\n3.11.2\ndebian 12\nno-sudo\n"), False, "sudo is not installed"),
        (
            probe(0, "1000\n3.11.2\ndebian 12\nsudo-refused sudo: a password is required\n"),
            False,
            "no password-less sudo (sudo -n true: sudo: a password is required)",
        ),
        (probe(0, "0\n3.11.2\ndebian 11\nroot\n"), False, "Debian 12 or 13 only"),
        (probe(0, "0\nno-python\ndebian 12\nsudo-ok\n"), False, "no python3"),
        (probe(0, "0\n3.12.3\nubuntu 24.04\nsudo-ok\n"), False, "unsupported OS"),
        (probe(255, stderr="Host key verification failed.\n"), False, "host key"),
        (probe(255, stderr="root@x: Permission denied (publickey).\n"), False, "refused"),
        (
            probe(255, stderr="ssh: connect to host x port 22: No route to host\n"),
            False,
            "unreachable",
        ),
    ],
)
def test_preflight_verdicts(
    result: subprocess.CompletedProcess[str], ok: bool, problem: str | None
) -> None:
    verdict = _classify(HOST, result)
    assert verdict.ok is ok
    if problem is not None:
        assert verdict.problem and problem in verdict.problem


def test_state_round_trip(tmp_path: Path) -> None:
    state = RolloutState("inv.yml")
    state.hosts["web1"] = HostOutcome(
        "web1",
        "lego_nginx",
        "failed",
        ["web1.example.com"],
        error="preflight: unreachable",
        eab_kid="kid",
    )
    path = tmp_path / "state" / "rollout-state.json"
    state.save(path)
    loaded = RolloutState.load(path, "inv.yml")
    assert loaded.hosts["web1"] == state.hosts["web1"]
    assert not loaded.hosts["web1"].done
    assert "hmac" not in path.read_text()


def _host(name: str, **variables: str) -> FleetHost:
    names = (f"{name}.example.com",)
    return FleetHost(name, "10.77.0.12", "lego_nginx", names, "private", "org", variables=variables)


def test_an_inventory_path_is_read_from_all_or_from_what_every_host_agrees_on(
    tmp_path: Path,
) -> None:
    from acmefleet.fleet.inventory import Fleet, InventoryError
    from acmefleet.fleet.settings import inventory_path_var

    inventory = tmp_path / "fleet.yml"
    name = "acmefleet_trust_bundle"
    given = Fleet((_host("a"),), (), {name: "/etc/roots.pem"})
    assert inventory_path_var(given, inventory, name) == Path("/etc/roots.pem")
    # a plugin's ``all`` vars reach ansible-inventory --list as each host's
    agreed = Fleet((_host("a", **{name: "roots.pem"}), _host("b", **{name: "roots.pem"})), (), {})
    # (every host: one host's own setting is not the fleet's)
    assert inventory_path_var(agreed, inventory, name) == tmp_path / "roots.pem"
    split_hosts = Fleet((_host("a", **{name: "x.pem"}), _host("b", **{name: "y.pem"})), (), {})
    assert inventory_path_var(split_hosts, inventory, name) is None
    one_host = Fleet((_host("a", **{name: "x.pem"}), _host("b")), (), {})
    assert inventory_path_var(one_host, inventory, name) is None
    assert inventory_path_var(Fleet((_host("a"),), (), {}), inventory, name) is None
    templated = Fleet((_host("a", **{name: "{{ x }}"}),), (), {})
    with pytest.raises(InventoryError, match="plain path"):
        inventory_path_var(templated, inventory, name)


def test_the_hosts_trust_is_the_servers_cas_and_the_trust_bundle_in_one_file(
    tmp_path: Path,
) -> None:
    from acmefleet.fleet.inventory import InventoryError
    from acmefleet.fleet.tls import hosts_bundle

    server, trust = tmp_path / "server.pem", tmp_path / "upstream-root.pem"
    server.write_text("SERVER CA\n")
    trust.write_text("UPSTREAM ROOT\n")
    state = tmp_path / "state"
    assert hosts_bundle(server, None, state) == server  # nothing to add: the server's own
    assert not state.exists()
    # a link planted where the file goes is replaced, never written through
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    state.mkdir(mode=0o700)
    (state / "hosts-trust.pem").symlink_to(victim)
    combined = hosts_bundle(server, trust, state)
    assert combined == state / "hosts-trust.pem" and not combined.is_symlink()
    assert combined.read_text() == "SERVER CA\nUPSTREAM ROOT\n"
    assert victim.read_text() == "untouched"
    assert sorted(p.name for p in state.iterdir()) == ["hosts-trust.pem"]
    fresh = tmp_path / "fresh-state"
    hosts_bundle(server, trust, fresh)
    assert fresh.stat().st_mode & 0o777 == 0o700  # beside the admin token
    with pytest.raises(InventoryError, match="no such file"):
        hosts_bundle(server, tmp_path / "missing.pem", state)
