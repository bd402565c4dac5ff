"""One command on a Linux host over SSH, through the probe the operator chose.

``paramiko`` runs it in-process (``ssh_probe``); ``ssh`` runs the ssh client with the
inventory's options (``preflight.ssh_command``). Either way the answer is the command's exit
status and output, or ``ProbeError`` when the host could not be asked.
"""

from __future__ import annotations

import subprocess

from acmefleet.fleet import ssh_probe
from acmefleet.fleet.inventory import FleetHost
from acmefleet.fleet.preflight import Probe, ssh_command
from acmefleet.fleet.ssh_probe import CommandResult, ProbeError

SSH_FAILED = 255  # what the ssh client exits with when it could not run the command


def run_on_host(
    host: FleetHost, ssh_options: list[str], probe: Probe, command: str, timeout: float
) -> CommandResult:
    if probe == "paramiko":
        return ssh_probe.run_command(
            host, ssh_probe.parse_ssh_options(ssh_options), command, timeout
        )
    try:
        done = subprocess.run(
            ssh_command(host, ssh_options, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"no SSH answer within {timeout:.0f} s") from None
    if done.returncode == SSH_FAILED:
        lines = done.stderr.strip().splitlines()
        raise ProbeError(lines[-1] if lines else "ssh could not run the command")
    return CommandResult(done.returncode, done.stdout, done.stderr)
