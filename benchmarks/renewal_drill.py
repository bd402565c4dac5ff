"""Mass-replacement drill on lab hosts: every certificate of a fleet replaced through ARI.

    sudo .venv/bin/python benchmarks/renewal_drill.py [--hosts 10] [--within-minutes 1]
        [--check-every 15] [--deadline 900] [--json FILE]

What an operator does when a CA incident forces every certificate out (RFC 9773's case):

1. N fresh Debian 12 lab hosts (certbot+Apache, certbot+nginx and lego+nginx in turn) enrol
   against one acmefleet (the tests' server on the lab bridge, private endpoint) with
   ``playbooks/enroll.yml``; their renew-check timers ask the server's renewalInfo every
   ``--check-every`` seconds (the drill's pace: the default is every 15 minutes).
2. ``acmefleet status`` is green; the operator pulls the renewal window of every certificate
   of the organisation forward (``acmefleet admin cert pull-forward --org … --within``).
3. Nothing else is run: each host's own timer sees the window open and renews through its
   own client. Measured: the time until every host serves a new certificate.
4. The old certificates are revoked; the CRL and OCSP say so; ``status`` is green again.
5. The same replacement forced from the controller: ``acmefleet renew --waves 1,50%,100%``.
   Measured: its wall time.

The hosts and the server are removed at the end; the script stops by itself (every wait is
bounded). Needs root (lab hosts), like the host tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from acmefleet.fleet import revocation_probe, tls  # noqa: E402
from acmefleet.fleet.inventory import load_fleet  # noqa: E402
from acmefleet.lab.fleet import bring_up  # noqa: E402
from acmefleet.lab.hosts import Lab, LabHost  # noqa: E402
from acmefleet.lab.rootfs import LAB_USER  # noqa: E402
from tests.hosts.fleetlab import ansible_playbook  # noqa: E402
from tests.hosts.support_acme import DOMAIN, LabAcme, running_acme  # noqa: E402
from tests.support.clients import fetch_crl  # noqa: E402

ACMEFLEET = str(Path(sys.executable).with_name("acmefleet"))
STACKS = ("certbot_apache", "certbot_nginx", "lego_nginx")
FIRST_INDEX = 200
ORG = "lab"


@dataclass
class Drill:
    lab: Lab
    hosts: list[LabHost]
    acme: LabAcme
    inventory: Path
    extra: list[str]

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ACMEFLEET, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def admin(self, *args: str) -> Any:
        done = self.run("admin", *args, "--data-dir", str(self.acme.data_dir), "--json")
        if done.returncode != 0:
            raise SystemExit(f"acmefleet admin {' '.join(args)}: {done.stderr}")
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
            raise SystemExit(f"acmefleet status: {done.stdout}{done.stderr}")
        return done.returncode, {row["host"]: row for row in json.loads(done.stdout)}

    def served(self) -> dict[str, tls.ServedCertificate]:
        return tls.probe_all(list(load_fleet(self.inventory).hosts), self.acme.ca_bundle)


def inventory_document(lab: Lab, hosts: list[LabHost], check_every: int) -> dict[str, object]:
    ssh_args = (
        f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes "
        "-o ControlMaster=auto -o ControlPersist=120s"
    )
    return {
        "plugin": "acmefleet.fleet.fleet",
        "vars": {
            "ansible_user": LAB_USER,
            "ansible_ssh_private_key_file": str(lab.ssh_key),
            "ansible_ssh_common_args": ssh_args,
            "acmefleet_renew_check_on_calendar": f"*:*:0/{check_every}",
            "acmefleet_renew_check_randomized_delay": max(1, check_every // 5),
        },
        "defaults": {"org": ORG, "endpoint": "private", "email": f"ops@{DOMAIN}"},
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
        raise SystemExit(f"not renewed within {deadline:.0f} s: {', '.join(missing)}")
    return time.monotonic() - started, renewed


def drill_once(drill: Drill, within_minutes: float, deadline: float) -> dict[str, Any]:
    names = [h.name for h in drill.hosts]
    code, rows = drill.status()
    if code != 0:
        raise SystemExit(f"status is not green before the drill: {rows}")
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
    crl = {format(e.serial_number, "x") for e in fetch_crl(drill.acme.pki_port, "private")}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--within-minutes", type=float, default=1.0)
    parser.add_argument("--check-every", type=int, default=15, help="renew-check pace, s")
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not 1 <= args.hosts <= 50 or not 1 <= args.check_every <= 59:
        parser.error("--hosts must be 1-50 and --check-every 1-59 (seconds)")
    lab = Lab()
    names = [(f"drill{i}", FIRST_INDEX + i) for i in range(args.hosts)]
    for name, _ in names:
        lab.down(name)  # leftovers of an interrupted run
    workdir = Path(tempfile.mkdtemp(prefix="renewal-drill-"))
    try:
        started = time.monotonic()
        hosts = bring_up(lab, names, parallel=4)
        mapping = {f"{h.name}.{DOMAIN}": h.address for h in hosts}
        with running_acme(workdir / "acmefleet", mapping, pki_host="127.0.0.1") as acme:
            inventory = workdir / "drill.fleet.yml"
            inventory.write_text(yaml.safe_dump(inventory_document(lab, hosts, args.check_every)))
            extra = [
                "-e",
                f"acmefleet_api_url={acme.base_url}",
                "-e",
                f"acmefleet_console_token_file={acme.root / 'admin-token'}",
                "-e",
                f"acmefleet_ca_bundle={acme.ca_bundle}",
            ]
            drill = Drill(lab, hosts, acme, inventory, extra)
            print(f"{args.hosts} hosts up; enrolling ...", flush=True)
            enrolled = ansible_playbook("enroll.yml", inventory, *extra)
            if enrolled.rc != 0:
                raise SystemExit(f"enrolment failed:\n{enrolled.output[-4000:]}")
            setup_seconds = time.monotonic() - started
            print(f"enrolled in {setup_seconds:.0f} s (hosts up included)", flush=True)
            result = {"setup_seconds": round(setup_seconds, 1)} | drill_once(
                drill, args.within_minutes, args.deadline
            )
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        for name, _ in names:
            lab.down(name)


if __name__ == "__main__":
    main()
