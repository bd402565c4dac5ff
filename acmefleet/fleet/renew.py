"""``acmefleet renew``: force renewal on chosen hosts through their own clients, in waves.

Each Linux host has ``acmefleet-renew-now-NAME.service`` (roles/renew_check): the client's
own forced renewal (certbot renew --force-renewal, lego renew --days=-1) with the role's
hooks. A host is renewed by starting that unit over SSH (it is a oneshot: ``systemctl
start`` returns when it is over) and then checked over TLS from here: it must serve a
certificate that verifies, for its names, other than the one it served before. A Windows
host starts the on-demand task roles/win_acme registered (``wacs.exe --renew --force
--id`` as SYSTEM) over WinRM instead and waits for its run (``winrm_probe.force_renewal``;
verified on paper only). Waves and
the failure budget are the roll-out's (``--waves``, ``--max-fail``); once a wave has more
failures than its budget the hosts of later waves are not run.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from acmefleet.fleet import ssh_probe, tls, winrm_probe
from acmefleet.fleet.core import over_budget
from acmefleet.fleet.inventory import FleetHost
from acmefleet.fleet.preflight import Probe
from acmefleet.fleet.remote import run_on_host
from acmefleet.fleet.ssh_probe import ProbeError
from acmefleet.fleet.waves import Budget, split

RenewStatus = Literal["renewed", "failed", "not-run"]
RENEW_TIMEOUT = 900.0
SETTLE_SECONDS = 30.0


@dataclass(frozen=True)
class RenewOutcome:
    host: str
    status: RenewStatus
    wave: int
    serial_before: str | None = None
    serial_after: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "status": self.status,
            "wave": self.wave,
            "serial_before": self.serial_before,
            "serial_after": self.serial_after,
            "error": self.error,
            "seconds": round(self.seconds, 1),
        }


def renew_now_unit(host: FleetHost) -> str:
    """The unit roles/renew_check installed for the host's certificate (its first name)."""
    return f"acmefleet-renew-now-{host.renew_check_name}.service"


def verdict(
    host: FleetHost, before: tls.ServedCertificate, after: tls.ServedCertificate
) -> str | None:
    """Why the host did not end up serving a new certificate (None: it does)."""
    if not after.verified:
        return f"verification: {after.problem or 'the served chain does not verify'}"
    if set(after.names) != set(host.names):
        return f"verification: serves {', '.join(after.names)}, not {', '.join(host.names)}"
    if before.serial is not None and after.serial == before.serial:
        return f"still serves the certificate with serial {after.serial}"
    return None


def _start(host: FleetHost, ssh_options: list[str], probe: Probe, unit: str) -> str | None:
    """Start the unit on the host; why that failed (None: it ran and succeeded)."""
    try:
        command = f"sudo -n systemctl start {shlex.quote(unit)}"
        answer = run_on_host(host, ssh_options, probe, command, RENEW_TIMEOUT)
    except ProbeError as exc:
        return str(exc)
    if answer.exit_status == 0:
        return None
    stderr = answer.stderr.strip()
    last = stderr.splitlines()[-1] if stderr else f"exit status {answer.exit_status}"
    return f"{unit}: {last} (journalctl -u {unit} on the host)"


def renew_host(
    host: FleetHost,
    wave: int,
    ssh_options: list[str],
    ca_bundle: Path | None,
    probe: Probe,
    winrm: winrm_probe.WinrmContext | None = None,
) -> RenewOutcome:
    started = time.monotonic()
    before = tls.probe(host, ca_bundle)
    if host.is_windows:
        context = winrm or winrm_probe.WinrmContext()
        failed = winrm_probe.force_renewal(host, context, RENEW_TIMEOUT)
    else:
        failed = _start(host, ssh_options, probe, renew_now_unit(host))
    after = tls.probe(host, ca_bundle)
    error = failed or verdict(host, before, after)
    # A reload (nginx's, Apache's graceful one) is signalled by the client's hook and done by
    # the server a moment later: until its new workers answer, the old certificate is served.
    settle_until = time.monotonic() + SETTLE_SECONDS
    while failed is None and error is not None and time.monotonic() < settle_until:
        time.sleep(1)
        after = tls.probe(host, ca_bundle)
        error = verdict(host, before, after)
    return RenewOutcome(
        host.name,
        "failed" if error else "renewed",
        wave,
        before.serial,
        after.serial,
        error,
        time.monotonic() - started,
    )


def run(
    hosts: list[FleetHost],
    *,
    waves: str,
    budget: Budget,
    ssh_options: list[str],
    ca_bundle: Path | None,
    probe: Probe = "paramiko",
    parallel: int = ssh_probe.DEFAULT_PARALLEL,
    winrm: winrm_probe.WinrmContext | None = None,
) -> list[RenewOutcome]:
    """Every host renewed wave by wave; once a wave is over its budget, the rest not run."""
    outcomes: list[RenewOutcome] = []
    planned = split(hosts, waves)
    for number, wave in enumerate(planned, start=1):

        def renew_one(host: FleetHost, wave_number: int = number) -> RenewOutcome:
            return renew_host(host, wave_number, ssh_options, ca_bundle, probe, winrm)

        done = ssh_probe.parallel_map(renew_one, wave, parallel)
        outcomes += done
        failures = sum(1 for o in done if o.status == "failed")
        if over_budget(failures, budget, len(wave)):
            for later, rest in enumerate(planned[number:], start=number + 1):
                outcomes += [RenewOutcome(h.name, "not-run", later) for h in rest]
            break
    return outcomes
