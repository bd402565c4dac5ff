"""``acmefleet status``: what every host serves now, and whether renewal is set up."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from acmefleet.fleet import ssh_probe, stacks, tls, winrm_probe
from acmefleet.fleet.inventory import Fleet, FleetHost
from acmefleet.fleet.preflight import Probe, ssh_command

# What renews each Linux stack's certificate (a systemd unit), from the registry.
RENEWAL_TIMERS = {s.name: s.renewal_unit for s in stacks.load().values() if not s.is_windows}


@dataclass(frozen=True)
class HostStatus:
    host: str
    stack: str
    served: tls.ServedCertificate
    renewal: str  # enabled / disabled / unknown

    def as_json(self) -> dict[str, object]:
        days = self.served.days_left(tls.now())
        return {
            "host": self.host,
            "stack": self.stack,
            "reachable": self.served.reachable,
            "verified": self.served.verified,
            "names": list(self.served.names),
            "issuer": self.served.issuer,
            "serial": self.served.serial,
            "not_after": self.served.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
            if self.served.not_after
            else None,
            "days_left": days,
            "renewal": self.renewal,
            "problem": self.served.problem,
        }


def renewal_state(
    host: FleetHost,
    ssh_options: list[str],
    probe: Probe = "paramiko",
    winrm: winrm_probe.WinrmContext | None = None,
    timeout: float = 15.0,
) -> str:
    if host.is_windows:
        return winrm_probe.renewal(host, winrm or winrm_probe.WinrmContext(), timeout)
    timer = RENEWAL_TIMERS.get(host.stack)
    if timer is None:
        return "unknown"
    command = f"systemctl is-enabled {timer}"
    if probe == "paramiko":
        settings = ssh_probe.parse_ssh_options(ssh_options)
        try:
            answer = ssh_probe.run_command(host, settings, command, timeout)
        except ssh_probe.ProbeError:
            return "unknown"
        return "enabled" if answer.stdout.strip() == "enabled" else "disabled"
    try:
        result = subprocess.run(
            ssh_command(host, ssh_options, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "unknown"
    if result.returncode == 255:
        return "unknown"
    return "enabled" if result.stdout.strip() == "enabled" else "disabled"


def collect(
    fleet: Fleet,
    ca_bundle: Path | None,
    ssh_options: list[str],
    *,
    probe: Probe = "paramiko",
    parallel: int = ssh_probe.DEFAULT_PARALLEL,
    winrm: winrm_probe.WinrmContext | None = None,
) -> list[HostStatus]:
    hosts = list(fleet.hosts)
    served = tls.probe_all(hosts, ca_bundle)
    renewals = ssh_probe.parallel_map(
        lambda h: renewal_state(h, ssh_options, probe, winrm), hosts, parallel
    )
    return [
        HostStatus(h.name, h.stack, served[h.name], r) for h, r in zip(hosts, renewals, strict=True)
    ]


def print_table(rows: list[HostStatus], console: Console, min_days: int = 30) -> None:
    table = Table(title="acmefleet status")
    for column in ("host", "stack", "names", "issuer", "days left", "renewal", "problem"):
        table.add_column(column, overflow="fold")
    for row in rows:
        days = row.served.days_left(tls.now())
        colour = (
            "red"
            if days is None or not row.served.verified
            else ("yellow" if days < min_days else "green")
        )
        table.add_row(
            row.host,
            row.stack,
            ", ".join(row.served.names),
            row.served.issuer or "",
            f"[{colour}]{days if days is not None else '-'}[/]",
            f"[{'green' if row.renewal == 'enabled' else 'yellow'}]{row.renewal}[/]",
            row.served.problem or "",
        )
    console.print(table)
