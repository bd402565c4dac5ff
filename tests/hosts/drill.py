"""The mass-replacement drill (issue 17), shared by tests/hosts/test_renewal_drill.py and
benchmarks/renewal_drill.py: lab hosts enrol, the operator pulls every certificate of the
organisation forward (RFC 9773), each host renews through its own renew-check timer, the
old certificates are revoked (CRL, OCSP), ``acmefleet status`` is green, then the same
replacement is forced from the controller with ``acmefleet renew`` in waves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from acmefleet.fleet import revocation_probe, tls
from acmefleet.fleet.inventory import load_fleet
from acmefleet.lab.fleet import bring_up, connection_vars
from acmefleet.lab.hosts import Lab, LabHost
from tests.hosts.fleetlab import ansible_playbook
from tests.hosts.support_acme import DOMAIN, LabAcme, running_acme
from tests.support.clients import fetch_crl


class DrillFailed(Exception):
    """What went wrong, in words (the script prints it, the test fails with it)."""


ACMEFLEET = str(Path(sys.executable).with_name("acmefleet"))
STACKS = ("certbot_apache", "certbot_nginx", "lego_nginx")
ORG = "lab"


@dataclass
class Drill:
    lab: Lab
    hosts: list[LabHost]
    acme: LabAcme
    inventory: Path
    extra: list[str]
    endpoint: str

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ACMEFLEET, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def admin(self, *args: str) -> Any:
        done = self.run("admin", *args, "--data-dir", str(self.acme.data_dir), "--json")
        if done.returncode != 0:
            raise DrillFailed(f"acmefleet admin {' '.join(args)}: {done.stderr}")
        return json.loads(done.stdout)

    def status(self) -> tuple[int, dict[str, dict[str, Any]]]:
        done = self.run(
            "status",
            "-i",
            str(self.inventory),
            "--json",
            "--ca-bundle",
            str(self.acme.ca_bundle),
            "--server",
            self.acme.base_url,
        )
        if not done.stdout.startswith("["):
            raise DrillFailed(f"acmefleet status: {done.stdout}{done.stderr}")
        return done.returncode, {row["host"]: row for row in json.loads(done.stdout)}

    def served(self) -> dict[str, tls.ServedCertificate]:
        return tls.probe_all(list(load_fleet(self.inventory).hosts), self.acme.ca_bundle)


def inventory_document(
    lab: Lab, hosts: list[LabHost], check_every: int, endpoint: str
) -> dict[str, object]:
    return {
        "plugin": "acmefleet.fleet.fleet",
        "vars": {
            **connection_vars(lab),
            "acmefleet_renew_check_on_calendar": f"*:*:0/{check_every}",
            "acmefleet_renew_check_randomized_delay": max(1, check_every // 5),
        },
        "defaults": {"org": ORG, "endpoint": endpoint, "email": f"ops@{DOMAIN}"},
        "acme_servers": [],
        "hosts": [
            {
                "name": host.name,
                "address": host.address,
                "stack": STACKS[number % len(STACKS)],
                "names": [f"{host.name}.{DOMAIN}"],
            }
            for number, host in enumerate(hosts)
        ],
    }


def wait_until_renewed(
    drill: Drill, before: dict[str, tls.ServedCertificate], deadline: float
) -> tuple[float, dict[str, float]]:
    """Seconds until every host served a new certificate, and when each did."""
    started = time.monotonic()
    renewed: dict[str, float] = {}
    while len(renewed) < len(before) and time.monotonic() - started < deadline:
        time.sleep(5)
        for name, served in drill.served().items():
            if name not in renewed and served.verified and served.serial != before[name].serial:
                renewed[name] = time.monotonic() - started
                print(f"  {name} renewed at {renewed[name]:.0f} s", flush=True)
    missing = sorted(set(before) - set(renewed))
    if missing:
        raise DrillFailed(f"not renewed within {deadline:.0f} s: {', '.join(missing)}")
    return time.monotonic() - started, renewed


def drill_once(drill: Drill, within_minutes: float, deadline: float) -> dict[str, Any]:
    names = [h.name for h in drill.hosts]
    code, rows = drill.status()
    if code != 0:
        raise DrillFailed(f"status is not green before the drill: {rows}")
    before = drill.served()
    print(f"pull-forward of organisation {ORG!r}, window {within_minutes} min", flush=True)
    pulled = drill.admin(
        "cert",
        "pull-forward",
        "--org",
        ORG,
        "--reason",
        "mass-replacement drill",
        "--within",
        str(within_minutes / 60),
    )
    _, during = drill.status()
    timers_seconds, each = wait_until_renewed(drill, before, deadline)
    print(f"every host renewed through its own timer in {timers_seconds:.0f} s", flush=True)
    listed = {c["serial"]: c for c in drill.admin("cert", "list", "--org", ORG)}
    for name in names:
        drill.admin("cert", "revoke", listed[before[name].serial]["id"], "--reason", "4")
    level = "public" if drill.endpoint == "public" else "private"
    crl = {format(e.serial_number, "x") for e in fetch_crl(drill.acme.pki_port, level)}
    in_crl = sum(before[name].serial in crl for name in names)
    ocsp_revoked = sum(
        revocation_probe.ocsp_status(before[name].leaf_der) == "revoked" for name in names
    )
    code_after, rows_after = drill.status()
    print(f"old certificates revoked: {in_crl} in the CRL, {ocsp_revoked} by OCSP", flush=True)

    current = drill.served()
    started = time.monotonic()
    forced = drill.run(
        "renew",
        "-i",
        str(drill.inventory),
        "--waves",
        "1,50%,100%",
        "--json",
        "--ca-bundle",
        str(drill.acme.ca_bundle),
    )
    renew_seconds = time.monotonic() - started
    outcomes = json.loads(forced.stdout) if forced.stdout.startswith("[") else []
    renewed_by_renew = sum(
        row["status"] == "renewed" and row["serial_before"] == current[row["host"]].serial
        for row in outcomes
    )
    print(
        f"acmefleet renew: {renewed_by_renew}/{len(names)} hosts in "
        f"{len({row['wave'] for row in outcomes})} waves in {renew_seconds:.0f} s",
        flush=True,
    )
    return {
        "hosts": len(names),
        "stacks": {s: sum(1 for i in range(len(names)) if STACKS[i % 3] == s) for s in STACKS},
        "pulled_forward": pulled["count"],
        "status_during_drill": sorted({row["ari"] for row in during.values()}),
        "timers_seconds": round(timers_seconds, 1),
        "timers_seconds_by_host": {k: round(v, 1) for k, v in sorted(each.items())},
        "old_in_crl": in_crl,
        "old_revoked_by_ocsp": ocsp_revoked,
        "status_after_exit_code": code_after,
        "status_after_flags": {h: r["flags"] for h, r in rows_after.items() if r["flags"]},
        "renew_exit_code": forced.returncode,
        "renew_seconds": round(renew_seconds, 1),
        "renewed_by_acmefleet_renew": renewed_by_renew,
    }


def run_drill(
    workdir: Path,
    *,
    hosts: int,
    first_index: int,
    endpoint: str = "private",
    within_minutes: float = 1.0,
    check_every: int = 15,
    deadline: float = 900.0,
    prefix: str = "drill",
) -> dict[str, Any]:
    """``hosts`` fresh lab hosts (indices from ``first_index``) through the whole drill; the
    figures as a dictionary. The hosts and the server are removed on the way out."""
    lab = Lab()
    names = [(f"{prefix}{i}", first_index + i) for i in range(hosts)]
    for name, _ in names:
        lab.down(name)  # leftovers of an interrupted run
    try:
        started = time.monotonic()
        up = bring_up(lab, names, parallel=4)
        mapping = {f"{h.name}.{DOMAIN}": h.address for h in up}
        with running_acme(workdir / "acmefleet", mapping, pki_host="127.0.0.1") as acme:
            inventory = workdir / "drill.fleet.yml"
            document = inventory_document(lab, up, check_every, endpoint)
            inventory.write_text(yaml.safe_dump(document))
            extra = [
                "-e",
                f"acmefleet_api_url={acme.base_url}",
                "-e",
                f"acmefleet_console_token_file={acme.root / 'admin-token'}",
                "-e",
                f"acmefleet_ca_bundle={acme.ca_bundle}",
            ]
            drill = Drill(lab, up, acme, inventory, extra, endpoint)
            print(f"{hosts} hosts up; enrolling ...", flush=True)
            enrolled = ansible_playbook("enroll.yml", inventory, *extra)
            (workdir / "enroll.log").write_text(enrolled.output)
            if enrolled.rc != 0:
                raise DrillFailed(f"enrolment failed:\n{enrolled.output[-4000:]}")
            setup_seconds = time.monotonic() - started
            print(f"enrolled in {setup_seconds:.0f} s (hosts up included)", flush=True)
            figures = drill_once(drill, within_minutes, deadline)
            return {"setup_seconds": round(setup_seconds, 1), "endpoint": endpoint} | figures
    finally:
        for name, _ in names:
            lab.down(name)
