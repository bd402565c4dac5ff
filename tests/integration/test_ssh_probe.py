"""The SSH preflight against a real OpenSSH server on loopback, verdict by verdict.

Every case runs through both probes, in-process (paramiko, the default) and the ``ssh``
client (``--probe ssh``), with the same inputs (``ssh_options`` as settings.py builds them),
so the verdicts are compared, not only asserted: the in-process one tells an unknown host
key from a changed one, where the ``ssh`` client's stderr says "verification failed" for
both. No private key, passphrase or password ever appears in a verdict.
"""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from acmefleet.fleet import ssh_probe, status
from acmefleet.fleet.cli import renew as renew_command
from acmefleet.fleet.cli import status as status_command
from acmefleet.fleet.inventory import FleetHost
from acmefleet.fleet.preflight import PreflightResult, Probe, preflight
from tests.support.sshd import LoopbackSshd, is_root, keygen, loopback_sshd, throwaway_user

pytestmark = pytest.mark.integration

PROBES: tuple[Probe, ...] = ("paramiko", "ssh")


@pytest.fixture(scope="module")
def sshd() -> Iterator[LoopbackSshd]:
    with loopback_sshd(1) as servers:
        yield servers


def host(port: int, user: str | None = None, name: str = "web1") -> FleetHost:
    return FleetHost(
        name,
        "127.0.0.1",
        "lego_nginx",
        (f"{name}.example.net",),
        "private",
        "example",
        port=port,
        user=user or getpass.getuser(),
    )


def check(
    target: FleetHost, options: list[str], probe: Probe, timeout: float = 15.0
) -> PreflightResult:
    return preflight([target], options, probe=probe, timeout=timeout)[target.name]


def secrets(servers: LoopbackSshd, *keys: Path) -> list[str]:
    """The base64 lines of the private keys: none may show up in a verdict."""
    found = []
    for key in (servers.client_key, *keys):
        found += [ln for ln in key.read_text().splitlines() if ln and "PRIVATE KEY" not in ln]
    return found


@pytest.mark.parametrize("probe", PROBES)
def test_a_known_host_and_an_authorised_key_pass(
    sshd: LoopbackSshd, tmp_path: Path, probe: Probe
) -> None:
    options = sshd.ssh_options(sshd.known_hosts(tmp_path / "known_hosts"))
    verdict = check(host(sshd.ports[0]), options, probe)
    if is_root():
        assert verdict.ok, verdict
        assert verdict.problem is None
    else:  # the suite runs as root; a user without sudo gets its verdict instead
        assert "is not root" in (verdict.problem or ""), verdict
    assert verdict.os is not None and verdict.os.startswith("debian ")
    assert verdict.python is not None and verdict.python.startswith("3.")


@pytest.mark.parametrize("probe", PROBES)
def test_hashed_known_hosts_with_a_line_neither_can_read(
    sshd: LoopbackSshd, tmp_path: Path, probe: Probe
) -> None:
    """``ssh-keygen -H`` hashes the names; a broken line before it is passed over by both."""
    known = sshd.known_hosts(tmp_path / "known_hosts")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "127.0.0.1" not in known.read_text()
    known.write_text("[127.0.0.1]:1 ssh-ed25519 not*base64\n" + known.read_text())
    verdict = check(host(sshd.ports[0]), sshd.ssh_options(known), probe)
    assert verdict.os is not None and verdict.os.startswith("debian "), verdict


@pytest.mark.parametrize("probe", PROBES)
def test_an_unknown_host_key_is_refused(sshd: LoopbackSshd, tmp_path: Path, probe: Probe) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    verdict = check(host(sshd.ports[0]), sshd.ssh_options(empty), probe)
    assert not verdict.ok
    if probe == "paramiko":
        assert verdict.problem == "host key unknown (not in known_hosts)"
    else:
        assert verdict.problem == "host key unknown or changed (not in known_hosts)"
    assert not empty.read_text(), "strict checking never writes known_hosts"


@pytest.mark.parametrize("probe", PROBES)
def test_a_changed_host_key_is_refused(sshd: LoopbackSshd, tmp_path: Path, probe: Probe) -> None:
    other = keygen(tmp_path / "other_host_key", "another host")
    known = sshd.known_hosts(tmp_path / "known_hosts", other)
    verdict = check(host(sshd.ports[0]), sshd.ssh_options(known), probe)
    assert not verdict.ok
    if probe == "paramiko":
        assert verdict.problem == (
            "host key changed: the host offers a ssh-ed25519 key that does not match known_hosts"
        )
    else:
        assert verdict.problem == "host key unknown or changed (not in known_hosts)"
    for line in secrets(sshd, other):
        assert line not in (verdict.problem or "")


@pytest.mark.parametrize("probe", PROBES)
def test_a_key_the_host_does_not_authorise_is_refused(
    sshd: LoopbackSshd, tmp_path: Path, probe: Probe
) -> None:
    wrong = keygen(tmp_path / "wrong_key")
    options = sshd.ssh_options(sshd.known_hosts(tmp_path / "known_hosts"), key=wrong)
    verdict = check(host(sshd.ports[0]), options, probe)
    assert not verdict.ok
    assert verdict.problem == "SSH login refused (key not authorised)"
    for line in secrets(sshd, wrong):
        assert line not in (verdict.problem or "")


@pytest.mark.parametrize("probe", PROBES)
def test_a_missing_key_file_leaves_no_key_and_the_login_is_refused(
    sshd: LoopbackSshd, tmp_path: Path, probe: Probe
) -> None:
    """ssh warns about an identity file that is not there and goes on without it."""
    options = sshd.ssh_options(
        sshd.known_hosts(tmp_path / "known_hosts"), key=tmp_path / "no-such-key"
    )
    verdict = check(host(sshd.ports[0]), options, probe)
    assert not verdict.ok
    assert verdict.problem == "SSH login refused (key not authorised)"


@pytest.mark.parametrize("probe", PROBES)
def test_a_closed_port_is_unreachable(sshd: LoopbackSshd, tmp_path: Path, probe: Probe) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        options = sshd.ssh_options(sshd.known_hosts(tmp_path / "known_hosts"))
        verdict = check(host(port), options, probe)
    assert not verdict.ok
    expected = f"connect to host 127.0.0.1 port {port}: Connection refused"
    assert verdict.problem is not None and verdict.problem.startswith("unreachable over SSH: ")
    assert verdict.problem.endswith(expected), verdict.problem


@pytest.mark.parametrize("probe", PROBES)
def test_a_port_that_never_answers_times_out(
    sshd: LoopbackSshd, tmp_path: Path, probe: Probe
) -> None:
    """TCP connects (the kernel accepts into the backlog) but no SSH banner ever comes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        known = sshd.known_hosts(tmp_path / "known_hosts")
        options = [*sshd.ssh_options(known)[:-2], "-o", "ConnectTimeout=2"]
        started = time.monotonic()
        verdict = check(host(port), options, probe)
        took = time.monotonic() - started
    assert not verdict.ok
    assert verdict.problem is not None
    assert verdict.problem.startswith("unreachable over SSH: ")
    assert verdict.problem.endswith(f"Connection to 127.0.0.1 port {port} timed out"), verdict
    assert took < 10, took


def test_a_silent_port_leaves_no_traceback_on_stderr() -> None:
    """In a process of its own, as the command line runs it (pytest's log capture would
    swallow what paramiko's thread logs): the verdict, and nothing on stderr."""
    script = (
        "import socket\n"
        "from acmefleet.fleet.inventory import FleetHost\n"
        "from acmefleet.fleet.preflight import preflight\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4)\n"
        "h = FleetHost('w', '127.0.0.1', 'lego_nginx', ('w.example',), 'p', 'o',"
        " port=s.getsockname()[1])\n"
        "print(preflight([h], ['-o', 'ConnectTimeout=1'])['w'].problem)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("timed out"), done.stdout
    assert done.stderr == ""


def test_a_login_without_root_or_sudo_is_named(sshd: LoopbackSshd, tmp_path: Path) -> None:
    """A fresh account with no sudo rule logs in: the verdict is the privilege one, from
    both probes alike."""
    assert is_root(), "the suite runs as root (it makes the account this test logs in as)"
    options = sshd.ssh_options(sshd.known_hosts(tmp_path / "known_hosts"))
    with throwaway_user() as user:
        verdicts = {p: check(host(sshd.ports[0], user), options, p) for p in PROBES}
    assert verdicts["paramiko"] == verdicts["ssh"], verdicts
    verdict = verdicts["paramiko"]
    assert not verdict.ok
    assert verdict.problem is not None and verdict.problem.startswith(f"{user} (uid ")
    assert "is not root and" in verdict.problem
    assert "password-less sudo" in verdict.problem or "sudo is not installed" in verdict.problem


def test_options_paramiko_cannot_honour_are_refused_by_name(sshd: LoopbackSshd) -> None:
    verdict = check(host(sshd.ports[0]), ["-o", "ProxyJump=bastion"], "paramiko")
    assert not verdict.ok
    assert verdict.problem == (
        "SSH option proxyjump is not supported by the in-process probe (use --probe ssh)"
    )


def test_the_command_runs_with_its_exit_status_and_bounded_output(
    sshd: LoopbackSshd, tmp_path: Path
) -> None:
    settings = ssh_probe.parse_ssh_options(
        sshd.ssh_options(sshd.known_hosts(tmp_path / "known_hosts"))
    )
    target = host(sshd.ports[0])
    answer = ssh_probe.run_command(target, settings, "echo out; echo err >&2; exit 3", 10)
    assert (answer.exit_status, answer.stdout, answer.stderr) == (3, "out\n", "err\n")
    with pytest.raises(ssh_probe.ProbeError, match="longer than"):
        ssh_probe.run_command(target, settings, "head -c 200000 /dev/zero", 10)
    started = time.monotonic()
    with pytest.raises(ssh_probe.ProbeError, match=r"^no SSH answer within 2 s$"):
        ssh_probe.run_command(target, settings, "sleep 30", 2)
    assert time.monotonic() - started < 6


def test_status_reads_the_renewal_timer_over_the_same_connection_settings(
    sshd: LoopbackSshd, tmp_path: Path
) -> None:
    """This machine has no lego-renew.timer: systemctl answers, and it is not "enabled";
    a host that cannot be reached is "unknown", with either probe."""
    options = sshd.ssh_options(sshd.known_hosts(tmp_path / "known_hosts"))
    up = host(sshd.ports[0])
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down = host(closed.getsockname()[1], name="web2")
        for probe in PROBES:
            assert status.renewal_state(up, options, probe) == "disabled"
            assert status.renewal_state(down, options, probe) == "unknown"


def test_many_hosts_in_a_bounded_pool(tmp_path: Path) -> None:
    """Eight servers, two at a time: every verdict comes back, each for its own host."""
    with loopback_sshd(8) as servers:
        options = servers.ssh_options(servers.known_hosts(tmp_path / "known_hosts"))
        hosts = [host(p, name=f"web{i}") for i, p in enumerate(servers.ports)]
        verdicts = preflight(hosts, options, parallel=2)
    assert sorted(verdicts) == sorted(h.name for h in hosts)
    assert all(v.os and v.os.startswith("debian ") for v in verdicts.values()), verdicts


def test_the_status_command_probes_through_the_inventorys_ssh_settings(
    sshd: LoopbackSshd, tmp_path: Path
) -> None:
    """``acmefleet status`` end to end: the inventory's SSH arguments and key reach the
    probe (both kinds); the host serves no TLS, so it is unverified and the exit is 1."""
    known = sshd.known_hosts(tmp_path / "known_hosts")
    source = tmp_path / "fleet.yml"
    source.write_text(
        "all:\n  vars:\n    acmefleet_endpoint: private\n    acmefleet_org: org\n"
        f"    ansible_user: {getpass.getuser()}\n"
        f"    ansible_ssh_private_key_file: {sshd.client_key}\n"
        f"    ansible_ssh_common_args: -o UserKnownHostsFile={known} -o ConnectTimeout=5\n"
        "  children:\n    lego_nginx:\n      hosts:\n        web1:\n"
        "          ansible_host: 127.0.0.1\n"
        f"          ansible_port: {sshd.ports[0]}\n"
        f"          acmefleet_tls_port: {sshd.ports[0]}\n"
        "          acmefleet_names: [web1.example.com]\n"
    )
    for probe in PROBES:
        result = CliRunner().invoke(
            status_command, ["-i", str(source), "--json", "--probe", probe, "--probe-parallel", "4"]
        )
        assert result.exit_code == 1, (probe, result.output)
        rows = json.loads(result.output)
        assert [(r["host"], r["renewal"], r["verified"]) for r in rows] == [
            ("web1", "disabled", False)
        ], (probe, rows)
    wrong = CliRunner().invoke(status_command, ["-i", str(source), "--probe-parallel", "0"])
    assert wrong.exit_code == 2


def test_renew_fails_precisely_and_stops_at_the_budget(sshd: LoopbackSshd, tmp_path: Path) -> None:
    """``acmefleet renew`` over the same SSH settings: this machine has no
    acmefleet-renew-now unit, so the canary fails with systemd's own words and, the budget
    being 0, the second wave is not run; the exit status is 1."""
    known = sshd.known_hosts(tmp_path / "known_hosts")
    source = tmp_path / "fleet.yml"
    hosts = "".join(
        f"        web{n}:\n          ansible_host: 127.0.0.1\n"
        f"          ansible_port: {sshd.ports[0]}\n          acmefleet_tls_port: {sshd.ports[0]}\n"
        f"          acmefleet_names: [web{n}.example.com]\n"
        for n in (1, 2)
    )
    source.write_text(
        "all:\n  vars:\n    acmefleet_endpoint: private\n    acmefleet_org: org\n"
        f"    ansible_user: {getpass.getuser()}\n"
        f"    ansible_ssh_private_key_file: {sshd.client_key}\n"
        f"    ansible_ssh_common_args: -o UserKnownHostsFile={known} -o ConnectTimeout=5\n"
        "  children:\n    lego_nginx:\n      hosts:\n" + hosts
    )
    for probe in PROBES:
        result = CliRunner().invoke(
            renew_command, ["-i", str(source), "--json", "--waves", "1,100%", "--probe", probe]
        )
        assert result.exit_code == 1, (probe, result.output)
        rows = {row["host"]: row for row in json.loads(result.output)}
        assert rows["web1"]["status"] == "failed" and rows["web1"]["wave"] == 1, rows
        error = rows["web1"]["error"]
        assert error.startswith("acmefleet-renew-now-lego-nginx-web1.example.com.service: "), error
        assert "journalctl -u acmefleet-renew-now-lego-nginx-web1.example.com.service" in error
        assert (rows["web2"]["status"], rows["web2"]["wave"]) == ("not-run", 2), rows
    for bad in (["--waves", "0"], ["--max-fail", "x"], ["--limit", "nothing-matches"]):
        refused = CliRunner().invoke(renew_command, ["-i", str(source), *bad])
        assert refused.exit_code == 2, (bad, refused.output)
