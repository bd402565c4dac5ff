"""``acmefleet status``: what every host serves now, and whether it is kept renewed.

Per host: the certificate served on its TLS port; its OCSP status and its renewal window
(RFC 9773) as the responder and the ACME server give them (``revocation_probe``); whether
its renewal timers (the client's, and acmefleet-renew-check's) are enabled and active. A
host is flagged when it cannot be reached or its chain does not verify, when it serves a
revoked certificate, one past the end of its renewal window, or when a renewal timer is not
active; the command exits 1 when any host is flagged (for cron and CI).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from acmefleet.fleet import revocation_probe, ssh_probe, stacks, tls, winrm_probe
from acmefleet.fleet.inventory import Fleet, FleetHost
from acmefleet.fleet.preflight import Probe
from acmefleet.fleet.remote import run_on_host

# What renews each Linux stack's certificate (a systemd unit), from the registry.
RENEWAL_TIMERS = {s.name: s.renewal_unit for s in stacks.load().values() if not s.is_windows}


AriState = Literal["not-due", "due", "past", "unknown"]
# Every flag HostStatus.flags can raise.
FLAGS = ("unreachable", "unverified", "revoked", "past-window", "timer-inactive")


@dataclass(frozen=True)
class HostStatus:
    host: str
    stack: str
    served: tls.ServedCertificate
    renewal: str  # enabled / disabled / unknown
    # Every renewal timer of the host active (None: not known, such as on Windows).
    timers_active: bool | None = None
    window: revocation_probe.RenewalWindow | None = None
    ocsp: revocation_probe.OcspVerdict = "unknown"

    def ari(self, now: datetime) -> AriState:
        if self.window is None:
            return "unknown"
        if now < self.window.start:
            return "not-due"
        return "due" if now < self.window.end else "past"

    def flags(self, now: datetime) -> list[str]:
        """What needs someone's attention (empty: the host is fine)."""
        found = []
        if not self.served.reachable:
            found.append("unreachable")
        elif not self.served.verified:
            found.append("unverified")
        if self.ocsp == "revoked":
            found.append("revoked")
        if self.ari(now) == "past":
            found.append("past-window")
        if self.timers_active is False or self.renewal == "disabled":
            found.append("timer-inactive")
        return found

    def as_json(self, now: datetime | None = None) -> dict[str, object]:
        moment = now or tls.now()
        days = self.served.days_left(moment)
        return {
            "host": self.host,
            "stack": self.stack,
            "reachable": self.served.reachable,
            "verified": self.served.verified,
            "names": list(self.served.names),
            "issuer": self.served.issuer,
            "serial": self.served.serial,
            "not_after": _stamp(self.served.not_after),
            "days_left": days,
            "renewal": self.renewal,
            "timers_active": self.timers_active,
            "ocsp": self.ocsp,
            "renewal_window": None
            if self.window is None
            else {"start": _stamp(self.window.start), "end": _stamp(self.window.end)},
            "ari": self.ari(moment),
            "flags": self.flags(moment),
            "problem": self.served.problem,
        }


def _stamp(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass(frozen=True)
class RenewalUnits:
    enabled: str  # the client's timer: enabled / disabled / unknown
    active: bool | None  # the client's and the renew-check's timers all active


def timer_command(timers: list[str]) -> str:
    """The client's timer enabled?, then every renewal timer active? (one line each).

    Each timer by name: a pattern would match only units systemd holds in memory, and a
    stopped timer may not be."""
    quoted = [shlex.quote(t) for t in timers]
    return (
        f"printf 'enabled=%s\\n' \"$(systemctl is-enabled {quoted[0]} 2>/dev/null)\"; "
        f"systemctl is-active {' '.join(quoted)}"
    )


def parse_timer_answer(stdout: str) -> RenewalUnits:
    """What ``timer_command`` printed."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    enabled = next(
        (line.removeprefix("enabled=") for line in lines if line.startswith("enabled=")), None
    )
    if enabled is None:
        return RenewalUnits("unknown", None)
    states = [line for line in lines if not line.startswith("enabled=")]
    return RenewalUnits(
        "enabled" if enabled == "enabled" else "disabled",
        all(s == "active" for s in states) if states else None,
    )


def renewal_state(
    host: FleetHost,
    ssh_options: list[str],
    probe: Probe = "paramiko",
    winrm: winrm_probe.WinrmContext | None = None,
    timeout: float = 15.0,
) -> str:
    return renewal_units(host, ssh_options, probe, winrm, timeout).enabled


def renewal_units(
    host: FleetHost,
    ssh_options: list[str],
    probe: Probe = "paramiko",
    winrm: winrm_probe.WinrmContext | None = None,
    timeout: float = 15.0,
) -> RenewalUnits:
    if host.is_windows:
        return RenewalUnits(
            winrm_probe.renewal(host, winrm or winrm_probe.WinrmContext(), timeout), None
        )
    timer = RENEWAL_TIMERS.get(host.stack)
    if timer is None:
        return RenewalUnits("unknown", None)
    try:
        timers = [timer]
        if host.has_renew_check:
            timers.append(f"acmefleet-renew-check-{host.renew_check_name}.timer")
        answer = run_on_host(host, ssh_options, probe, timer_command(timers), timeout)
    except ssh_probe.ProbeError:
        return RenewalUnits("unknown", None)
    return parse_timer_answer(answer.stdout)


def collect(
    fleet: Fleet,
    ca_bundle: Path | None,
    ssh_options: list[str],
    *,
    probe: Probe = "paramiko",
    parallel: int = ssh_probe.DEFAULT_PARALLEL,
    winrm: winrm_probe.WinrmContext | None = None,
    server_url: str | None = None,
) -> list[HostStatus]:
    """Every host's status; ``server_url`` (the ACME server's base URL) to ask its
    renewalInfo, none to leave the windows unknown."""
    hosts = list(fleet.hosts)
    served = tls.probe_all(hosts, ca_bundle)
    units = ssh_probe.parallel_map(
        lambda h: renewal_units(h, ssh_options, probe, winrm), hosts, parallel
    )

    def learn(host: FleetHost) -> tuple[revocation_probe.RenewalWindow | None, str]:
        der = served[host.name].leaf_der
        # Only a certificate whose chain verified: its AIA URLs are then a trusted CA's,
        # not wherever a host's self-made certificate would send this machine.
        if not der or not served[host.name].verified:
            return None, "unknown"
        directory = (
            f"{server_url.rstrip('/')}/acme/{host.endpoint}/directory" if server_url else None
        )
        window = revocation_probe.renewal_window(der, directory, ca_bundle) if directory else None
        return window, revocation_probe.ocsp_status(der)

    learned = ssh_probe.parallel_map(learn, hosts, parallel)
    return [
        HostStatus(
            h.name,
            h.stack,
            served[h.name],
            u.enabled,
            u.active,
            window,
            "revoked" if verdict == "revoked" else ("good" if verdict == "good" else "unknown"),
        )
        for h, u, (window, verdict) in zip(hosts, units, learned, strict=True)
    ]


def print_table(rows: list[HostStatus], console: Console, min_days: int = 30) -> None:
    table = Table(title="acmefleet status")
    for column in (
        "host",
        "stack",
        "names",
        "issuer",
        "days left",
        "renewal",
        "ARI",
        "OCSP",
        "flags",
    ):
        table.add_column(column, overflow="fold")
    now = tls.now()
    for row in rows:
        days = row.served.days_left(now)
        colour = (
            "red"
            if days is None or not row.served.verified
            else ("yellow" if days < min_days else "green")
        )
        flags = row.flags(now)
        kept = row.renewal == "enabled" and row.timers_active is not False
        table.add_row(
            escape(row.host),
            row.stack,
            escape(", ".join(row.served.names)),  # what a host's certificate says: no markup
            escape(row.served.issuer or ""),
            f"[{colour}]{days if days is not None else '-'}[/]",
            f"[{'green' if kept else 'yellow'}]{row.renewal}"
            f"{'' if row.timers_active is not False else ', inactive'}[/]",
            _ari_cell(row, now),
            f"[{'red' if row.ocsp == 'revoked' else 'green' if row.ocsp == 'good' else 'dim'}]"
            f"{row.ocsp}[/]",
            f"[red]{', '.join(flags)}[/]" if flags else escape(row.served.problem or ""),
        )
    console.print(table)


def _ari_cell(row: HostStatus, now: datetime) -> str:
    state = row.ari(now)
    if row.window is None:
        return "[dim]unknown[/]"
    colour = {"not-due": "green", "due": "yellow", "past": "red"}.get(state, "dim")
    when = row.window.start if state == "not-due" else row.window.end
    word = "from" if state == "not-due" else "by"
    return f"[{colour}]{state}[/] ({word} {when:%Y-%m-%d %H:%M})"
