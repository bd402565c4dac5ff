"""Preflight: every host checked in parallel before anything is spent on it.

One SSH round trip per host (strict host key checking against the known_hosts files in
use) answers: reachable, host key known and matching, root or password-less sudo, Python
present, a supported OS. It runs in-process over paramiko (``fleet/ssh_probe.py``, the
default, ``probe="paramiko"``) or through the ``ssh`` client (``probe="ssh"``: for setups
that need ``~/.ssh/config`` or a jump host); both give the same verdicts. Windows hosts
answer WinRM, not SSH: ``fleet/winrm_probe.py`` (a WSMan Identify and a PowerShell check).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Literal

from acmefleet.fleet import ssh_probe, winrm_probe
from acmefleet.fleet.inventory import FleetHost

Probe = Literal["paramiko", "ssh"]
PROBES: tuple[Probe, ...] = ("paramiko", "ssh")

PROBE = (
    "id -u; "
    "(command -v python3 >/dev/null && python3 -c 'import sys; print(sys.version.split()[0])')"
    " || echo no-python; "
    '(. /etc/os-release 2>/dev/null && echo "$ID $VERSION_ID") || echo unknown; '
    # Root needs no sudo; otherwise sudo must run without a password (-n: never prompt),
    # and when it does not, its own first line of complaint says why.
    'if [ "$(id -u)" = 0 ]; then echo root; '
    "elif ! command -v sudo >/dev/null; then echo no-sudo; "
    "elif sudo -n true 2>/dev/null; then echo sudo-ok; "
    'else echo "sudo-refused $(sudo -n true 2>&1 | head -n 1)"; fi'
)
SUPPORTED_OS = {("debian", "12"), ("debian", "13")}
SUPPORTED_TEXT = "Debian 12 or 13"


@dataclass(frozen=True)
class PreflightResult:
    host: str
    ok: bool
    problem: str | None = None
    os: str | None = None
    python: str | None = None


def ssh_command(host: FleetHost, ssh_options: list[str], remote: str) -> list[str]:
    return ["ssh", *ssh_options, "-p", str(host.port), f"{host.user}@{host.address}", remote]


def _classify(host: FleetHost, result: subprocess.CompletedProcess[str]) -> PreflightResult:
    """The ``ssh`` client's answer: its exit status 255 and stderr say why it failed."""
    if result.returncode == 255:
        err = result.stderr
        if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION" in err:
            reason = "host key unknown or changed (not in known_hosts)"
        elif "Permission denied" in err:
            reason = "SSH login refused (key not authorised)"
        else:
            last = err.strip().splitlines()[-1] if err.strip() else "no answer"
            reason = f"unreachable over SSH: {last}"
        return PreflightResult(host.name, False, reason)
    return classify_answer(host, result.stdout)


def classify_answer(host: FleetHost, stdout: str) -> PreflightResult:
    """The verdict from what PROBE printed (whichever transport ran it)."""
    lines = stdout.strip().splitlines()
    if len(lines) < 4:
        return PreflightResult(host.name, False, "unexpected answer to the preflight probe")
    uid, python, os_line, sudo = lines[:4]
    if python == "no-python":
        return PreflightResult(host.name, False, "no python3 on the host", os_line)
    distro = tuple(os_line.split()[:2])
    if distro not in SUPPORTED_OS:
        return PreflightResult(
            host.name, False, f"unsupported OS {os_line!r} ({SUPPORTED_TEXT} only)", os_line, python
        )
    privilege = _privilege_problem(host, uid.strip(), sudo.strip())
    if privilege is not None:
        return PreflightResult(host.name, False, privilege, os_line, python)
    return PreflightResult(host.name, True, None, os_line, python)


def _privilege_problem(host: FleetHost, uid: str, sudo: str) -> str | None:
    """None when the login can become root without a password (the plays use become)."""
    if uid == "0" or sudo in ("root", "sudo-ok"):
        return None
    who = f"{host.user} (uid {uid}) is not root and"
    if sudo == "no-sudo":
        return f"{who} sudo is not installed: neither root nor password-less sudo"
    if sudo.startswith("sudo-refused"):
        said = sudo.removeprefix("sudo-refused").strip() or "no reason given"
        return f"{who} has no password-less sudo (sudo -n true: {said})"
    return f"{who} its sudo could not be checked ({sudo!r})"


def check_host(
    host: FleetHost,
    ssh_options: list[str],
    timeout: float,
    probe: Probe = "paramiko",
    winrm: winrm_probe.WinrmContext | None = None,
) -> PreflightResult:
    if host.is_windows:
        verdict = winrm_probe.preflight(host, winrm or winrm_probe.WinrmContext(), timeout)
        return PreflightResult(host.name, verdict.ok, verdict.problem, verdict.os)
    if probe == "paramiko":
        settings = ssh_probe.parse_ssh_options(ssh_options)
        try:
            answer = ssh_probe.run_command(host, settings, PROBE, timeout)
        except ssh_probe.ProbeError as exc:
            return PreflightResult(host.name, False, str(exc))
        return classify_answer(host, answer.stdout)
    try:
        result = subprocess.run(
            ssh_command(host, ssh_options, PROBE),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return PreflightResult(host.name, False, f"no SSH answer within {timeout:.0f} s")
    return _classify(host, result)


def preflight(
    hosts: list[FleetHost],
    ssh_options: list[str],
    *,
    timeout: float = 15.0,
    parallel: int = ssh_probe.DEFAULT_PARALLEL,
    probe: Probe = "paramiko",
    winrm: winrm_probe.WinrmContext | None = None,
) -> dict[str, PreflightResult]:
    results = ssh_probe.parallel_map(
        lambda h: check_host(h, ssh_options, timeout, probe, winrm), hosts, parallel
    )
    return {r.host: r for r in results}
