"""Enrolment through real validation on a public endpoint: dns-01 and http-01, on lab hosts.

One acmefleet on the controller (tests/hosts/support_acme.py, on the lab bridge), Debian's
Knot on the bridge address, port 53, authoritative for ``lab.example`` and taking RFC 2136
updates signed with a TSIG key; the server's dns-01 validators ask it. Four Debian 12 hosts
enrol with ``playbooks/enroll.yml`` against the **public** endpoint (nothing is validated in
the console, so every name is proven by a challenge):

* ``c9dnsap`` (certbot_apache) and ``c9dnslego`` (lego_nginx, a name and its wildcard) with
  ``acmefleet_challenge: dns-01``. nftables on the controller drops what the server sends to
  their port 80: its validators cannot reach them over HTTP (shown: an http-01 challenge for
  one of them ends ``invalid``), as for an internal host; they enrol through dns-01 all the
  same, and their renewal units renew through dns-01 too.
* ``c9httpap`` (certbot_apache, ``certbot --apache``) and ``c9httpngx`` (certbot_nginx,
  ``certbot certonly --nginx``): Debian's certbot plugins answer http-01 in real apache2 and
  nginx, which the server's validators reach (``[validation] hosts``, port 80).

Last, ``c9httpap`` moves to the endpoint ``relayed``, a public endpoint whose certificates
come from an upstream CA (issue 16): Debian's pebble on the controller, EAB required,
validating dns-01 through the same knotd, which acmefleet updates over RFC 2136. The host
proves http-01 to acmefleet as before; acmefleet proves dns-01 to pebble; the host ends up
serving a certificate that chains to pebble's root.

``--check`` on the fresh hosts first: it succeeds and writes no secret file. The TSIG secret
reaches Ansible in a 0600 extra-vars file. Every process's command line and
environment on the machine (the lab hosts' processes included: they are in its PID
namespace's view) is sampled while the hosts enrol and renew; the secret must be in none, in
no Ansible output (``-vvv``), and on the dns-01 hosts only in the role's 0600 root file, in
no log and not in the journal.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from acmefleet.fleet import revocation_probe, tls
from acmefleet.fleet.inventory import load_fleet
from acmefleet.lab.fleet import bring_up
from acmefleet.lab.hosts import Lab, LabHost
from acmefleet.lab.network import GATEWAY
from acmefleet.lab.rootfs import LAB_USER
from tests.hosts.fleetlab import PlaybookRun, ansible_playbook, require_root
from tests.hosts.support_acme import DOMAIN, LabAcme, running_acme
from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import ACMEFLEET
from tests.support.knot import ALGORITHM, KEY_NAME, KnotServer
from tests.support.pebble import PebbleServer
from tests.support.secret_watch import SecretWatch, watching
from tests.support.upstream import (
    check_chains_to_pebble,
    pebble_root,
    private_file,
    validating_pebble,
)

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(3600)]

# name, lab index, stack, challenge, certificate names
HOSTS = [
    ("c9dnsap", 90, "certbot_apache", "dns-01", ["c9dnsap.lab.example", "www.c9dnsap.lab.example"]),
    ("c9dnslego", 91, "lego_nginx", "dns-01", ["c9dnslego.lab.example", "*.c9dnslego.lab.example"]),
    ("c9httpap", 92, "certbot_apache", "http-01", ["c9httpap.lab.example"]),
    ("c9httpngx", 93, "certbot_nginx", "http-01", ["c9httpngx.lab.example"]),
]
DNS_HOSTS = [h[0] for h in HOSTS if h[3] == "dns-01"]
HTTP_HOSTS = [h[0] for h in HOSTS if h[3] == "http-01"]
NFT_TABLE = "acmefleet_test_dns01"
SECRET_FILES = {
    "c9dnsap": "/etc/letsencrypt/acmefleet-rfc2136.ini",
    "c9dnslego": "/var/lib/lego/rfc2136-tsig-secret",
}
# Where a leftover secret could be on a host besides its file (logs, temporary files,
# Ansible's remote temporary directories, the clients' state).
SWEEP = "/etc /root /home /tmp /var/tmp /var/log /var/lib/letsencrypt /var/lib/lego /run"
# The command lines of certbot's and lego's dns-01 runs (the watch must have seen both), and
# the sampling pace: two cores are shared, and each run lasts seconds.
MARKERS = ("dns-rfc2136", "--dns.resolvers")
WATCH_INTERVAL = 0.02


def names_of(host: str) -> list[str]:
    return next(h[4] for h in HOSTS if h[0] == host)


@dataclass
class Lab9:
    lab: Lab
    hosts: dict[str, LabHost]
    acme: LabAcme
    knot: KnotServer
    inventory: Path
    extra: list[str]
    pebble: PebbleServer
    watch: SecretWatch | None = None
    first: PlaybookRun | None = None
    runs: int = 0

    def enroll(self, *options: str) -> PlaybookRun:
        run = ansible_playbook("enroll.yml", self.inventory, *self.extra, *options)
        self.runs += 1
        (self.inventory.parent / f"enroll-{self.runs}.log").write_text(run.output)
        return run

    def root(
        self, host: str, command: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``command`` as root on ``host``; ``stdin`` (a secret, say) on its standard input."""
        return subprocess.run(
            ["ssh", *self.lab.ssh_options(), f"root@{self.hosts[host].address}", command],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            errors="replace",
            timeout=300,
            check=False,
        )

    def valid_challenges(self, name: str) -> list[str]:
        """The types of the valid challenges of every authorization of ``name``."""
        with closing(sqlite3.connect(self.acme.data_dir / "acmefleet.db")) as conn:
            rows = conn.execute(
                "SELECT c.type FROM authorizations z JOIN challenges c ON c.authz_id = z.id "
                "WHERE z.identifier_value = ? AND c.status = 'valid'",
                (name.removeprefix("*."),),
            ).fetchall()
        return [str(r[0]) for r in rows]


def nft(rules: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, timeout=30)


def block_http(addresses: list[str]) -> None:
    """The controller (where the server's validators run) can no longer reach their port 80."""
    nft(
        f"table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n"
        f"table inet {NFT_TABLE} {{\n  chain output {{\n"
        "    type filter hook output priority 0; policy accept;\n"
        f"    ip daddr {{ {', '.join(addresses)} }} tcp dport 80 drop\n  }}\n}}\n"
    )


def unblock_http() -> None:
    subprocess.run(
        ["nft", "delete", "table", "inet", NFT_TABLE],
        check=False,
        timeout=30,
        capture_output=True,  # no such table: nothing to undo
    )


def relayed_endpoint(workdir: Path, pebble: PebbleServer, knot: KnotServer) -> str:
    """The endpoint ``relayed`` and its upstream, pebble (secrets in 0600 files)."""
    hmac_file = private_file(workdir / "pebble-eab.hmac", pebble.eab_keys["kid-1"])
    tsig_file = private_file(workdir / "tsig.secret", knot.secret)
    return f"""[[endpoints]]
name = "relayed"
type = "public"
ca = "public"
profiles = ["public-dv"]
challenges = ["http-01"]
upstream = "pebble"

[upstreams.pebble]
directory_url = "{pebble.directory_url}"
ca_bundle = "{pebble.ca_bundle}"
eab_kid = "kid-1"
eab_hmac_key_file = "{hmac_file}"
contact = ["mailto:ops@{DOMAIN}"]

[upstreams.pebble.dns01]
server = "{knot.host}"
port = {knot.port}
key_name = "{KEY_NAME}"
algorithm = "{ALGORITHM}"
secret_file = "{tsig_file}"
propagation_seconds = 0
"""


def inventory_document(
    lab: Lab, hosts: dict[str, LabHost], knot: KnotServer, endpoints: dict[str, str] | None = None
) -> dict[str, object]:
    ssh_args = (
        f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes "
        "-o ControlMaster=auto -o ControlPersist=120s"
    )
    dns01 = {
        "acmefleet_challenge": "dns-01",
        "acmefleet_rfc2136_server": knot.host,
        "acmefleet_rfc2136_port": knot.port,
        "acmefleet_rfc2136_tsig_key": KEY_NAME,
        "acmefleet_rfc2136_tsig_algorithm": ALGORITHM,
        # Test pace: knotd has the record at once; the defaults (60 s) suit real servers.
        "certbot_apache_dns_propagation_seconds": 2,
        "lego_nginx_dns_sequence_interval": 1,
        "lego_nginx_dns_propagation_timeout": 30,
    }
    return {
        "plugin": "acmefleet.fleet.fleet",
        "vars": {
            "ansible_user": LAB_USER,
            "ansible_ssh_private_key_file": str(lab.ssh_key),
            "ansible_ssh_common_args": ssh_args,
            # Test pace: the renew-check asks every 15 s (the default: every 15 minutes).
            "acmefleet_renew_check_on_calendar": "*:*:0/15",
            "acmefleet_renew_check_randomized_delay": 3,
        },
        "defaults": {"org": "lab", "endpoint": "public", "email": f"ops@{DOMAIN}"},
        "acme_servers": [],
        "hosts": [
            {
                "name": name,
                "address": hosts[name].address,
                "stack": stack,
                "names": names,
                **({"endpoint": (endpoints or {})[name]} if name in (endpoints or {}) else {}),
                **({"vars": dns01} if challenge == "dns-01" else {}),
            }
            for name, _, stack, challenge, names in HOSTS
        ],
    }


@pytest.fixture(scope="module")
def lab9(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab9]:
    require_root()
    workdir = tmp_path_factory.mktemp("challenges")
    lab = Lab()
    for name, *_ in HOSTS:
        lab.down(name)  # leftovers of an interrupted run
    unblock_http()
    try:
        hosts = {h.name: h for h in bring_up(lab, [(n, i) for n, i, *_ in HOSTS])}
        records = [
            f"{n.removesuffix('.' + DOMAIN)} A {hosts[h].address}"
            for h, *_, names in HOSTS
            for n in names
            if not n.startswith("*.")
        ]
        # Where lab hosts and the server reach it, on the port the zone's NS implies.
        with (
            KnotServer(workdir / "knot", records, zone=DOMAIN, host=GATEWAY, port=53) as knot,
            validating_pebble(workdir / "pebble", knot, authz_reuse=0) as pebble,
        ):
            mapping = {
                n: hosts[h].address
                for h, *_, names in HOSTS
                for n in names
                if not n.startswith("*.")
            }
            with running_acme(
                workdir / "acmefleet",
                mapping,
                dns_resolvers=[knot.address],
                # A valid authorization would be reused for the account's next orders (RFC
                # 8555 §7.1.4 allows it): never here, so every renewal validates again.
                authorization_reuse_days=0,
                extra_config=relayed_endpoint(workdir, pebble, knot),
                pki_host="127.0.0.1",  # acmefleet status asks OCSP where certificates say
            ) as acme:
                block_http([hosts[h].address for h in DNS_HOSTS])
                # Lab hosts have no DNS; these use the internal one, as on an internal
                # network (lego resolves the zone's NS names to check each of them).
                for name in DNS_HOSTS:
                    use_dns = subprocess.run(
                        [
                            "ssh",
                            *lab.ssh_options(),
                            f"root@{hosts[name].address}",
                            f"echo 'nameserver {GATEWAY}' > /etc/resolv.conf",
                        ],
                        capture_output=True,
                        text=True,
                        timeout=60,
                        check=False,
                    )
                    assert use_dns.returncode == 0, use_dns.stderr
                secrets_file = workdir / "tsig.json"
                secrets_file.touch(mode=0o600)
                secrets_file.write_text(json.dumps({"acmefleet_rfc2136_tsig_secret": knot.secret}))
                inventory = workdir / "lab.fleet.yml"
                inventory.write_text(yaml.safe_dump(inventory_document(lab, hosts, knot)))
                extra = [
                    "-e",
                    f"acmefleet_api_url={acme.base_url}",
                    "-e",
                    f"acmefleet_console_token_file={acme.root / 'admin-token'}",
                    "-e",
                    f"acmefleet_ca_bundle={acme.ca_bundle}",
                    "-e",
                    f"@{secrets_file}",
                ]
                yield Lab9(lab, hosts, acme, knot, inventory, extra, pebble)
    finally:
        unblock_http()
        for name, *_ in HOSTS:
            lab.down(name)


def test_check_mode_on_fresh_hosts_writes_no_secret(lab9: Lab9) -> None:
    run = lab9.enroll("--check")
    assert run.rc == 0, run.output[-8000:]
    assert "check mode: would register" in run.output
    assert lab9.knot.secret not in run.output
    assert lab9.acme.accounts() == 0
    for host in DNS_HOSTS:
        left = lab9.root(host, f"ls {' '.join(SECRET_FILES.values())} 2>/dev/null | wc -l")
        assert left.stdout.strip() == "0", (host, "check mode wrote the TSIG secret")


@pytest.fixture(scope="module")
def enrolled(lab9: Lab9) -> Lab9:
    """The first enrolment, watched for the TSIG secret in every process."""
    with watching(lab9.knot.secret, MARKERS, WATCH_INTERVAL) as watch:
        lab9.first = lab9.enroll("-vvv")
    lab9.watch = watch
    return lab9


def test_every_host_enrols_through_its_challenge(enrolled: Lab9) -> None:
    run = enrolled.first
    assert run is not None and run.rc == 0, run.output[-10000:] if run else ""
    served = tls.probe_all(list(load_fleet(enrolled.inventory).hosts), enrolled.acme.ca_bundle)
    for name, *_, challenge, names in HOSTS:
        assert served[name].verified, f"{name}: {served[name].problem}"
        assert sorted(served[name].names) == sorted(names), served[name]
        for identifier in names:
            types = enrolled.valid_challenges(identifier)
            assert types and set(types) == {challenge}, (name, identifier, types)


def test_the_dns01_hosts_cannot_be_reached_over_http(enrolled: Lab9) -> None:
    """Their web servers listen on port 80, but the server's http-01 validator cannot connect."""
    name = names_of("c9dnsap")[0]
    probe = enrolled.root("c9dnsap", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/")
    assert probe.stdout.strip() in {"200", "403", "404"}, probe.stdout + probe.stderr
    minted = enrolled.acme.mint("public")
    with AcmeClient(enrolled.acme.directory("public"), enrolled.acme.ca_bundle) as acme:
        created = acme.new_account(
            (minted["kid"], minted["hmac_key"]), contact=[f"mailto:ops@{DOMAIN}"]
        )
        assert created.status_code == 201, created.text
        order = acme.new_order([name])
        assert order.status_code == 201, order.text
        authz_url = order.json()["authorizations"][0]
        authz = acme.get(authz_url).json()
        [http01] = [c for c in authz["challenges"] if c["type"] == "http-01"]
        assert acme.answer_challenge(http01["url"]).status_code == 200
        final = acme.poll(authz_url, ("valid", "invalid"), timeout=60)
    assert final["status"] == "invalid", final
    [failed] = [c for c in final["challenges"] if c["type"] == "http-01"]
    assert failed["error"]["type"] == "urn:ietf:params:acme:error:connection", failed


def test_the_tsig_secret_is_only_in_its_0600_file(enrolled: Lab9) -> None:
    watch, run = enrolled.watch, enrolled.first
    assert watch is not None and run is not None and run.rc == 0
    assert watch.seen.get("dns-rfc2136", 0) > 0, "the watch never saw certbot's dns-01 run"
    assert watch.seen.get("--dns.resolvers", 0) > 0, "the watch never saw lego's dns-01 run"
    assert watch.hits == [], f"the TSIG secret was in: {watch.hits}"
    assert enrolled.knot.secret not in run.output, "the TSIG secret is in Ansible's output"
    for host, path in SECRET_FILES.items():
        mode = enrolled.root(host, f"stat -c '%a %U %G' {path}")
        assert mode.stdout.split() == ["600", "root", "root"], (host, mode.stdout, mode.stderr)
    for host in HTTP_HOSTS:
        absent = enrolled.root(host, f"ls {' '.join(SECRET_FILES.values())} 2>/dev/null | wc -l")
        assert absent.stdout.strip() == "0", host


def test_a_second_enrolment_changes_nothing(enrolled: Lab9) -> None:
    again = enrolled.enroll()
    assert again.rc == 0, again.output[-8000:]
    assert all(again.changed()[name] == 0 for name, *_ in HOSTS), again.output[-8000:]
    assert enrolled.knot.secret not in again.output


def test_renewal_goes_on_through_dns01(enrolled: Lab9) -> None:
    """The real renewal units, forced, while port 80 is still unreachable."""
    force = {
        "c9dnsap": (
            "certbot.service",
            "[Service]\nExecStart=\nExecStart=/usr/bin/certbot -q renew "
            "--no-random-sleep-on-renew --force-renewal\n",
        ),
        "c9dnslego": ("lego-renew.service", "[Service]\nEnvironment=LEGO_RENEW_DAYS=3650\n"),
    }
    before = {h: served.serial for h, served in probe(enrolled, DNS_HOSTS).items()}
    counts = {h: len(enrolled.valid_challenges(names_of(h)[0])) for h in DNS_HOSTS}
    with watching(enrolled.knot.secret, MARKERS, WATCH_INTERVAL) as watch:
        for host, (unit, dropin) in force.items():
            directory = f"/run/systemd/system/{unit}.d"
            script = (
                f"mkdir -p {directory} && cat > {directory}/zz-force.conf && "
                f"systemctl daemon-reload && systemctl start {unit}; rc=$?; "
                f"rm -f {directory}/zz-force.conf; systemctl daemon-reload; exit $rc"
            )
            done = enrolled.root(host, script, stdin=dropin)
            journal = enrolled.root(host, f"journalctl --no-pager -o cat -u {unit} | tail -40")
            assert done.returncode == 0, (host, done.stderr, journal.stdout)
    assert watch.hits == [], f"the TSIG secret was in: {watch.hits}"
    after = probe(enrolled, DNS_HOSTS)
    for host in DNS_HOSTS:
        assert after[host].verified and after[host].serial != before[host], (host, after[host])
        types = enrolled.valid_challenges(names_of(host)[0])
        assert len(types) > counts[host] and set(types) == {"dns-01"}, (host, types)
    unit = enrolled.root("c9dnslego", "cat /etc/systemd/system/lego-renew.service").stdout
    assert "--dns rfc2136" in unit and "RFC2136_TSIG_SECRET_FILE=" in unit, unit
    assert enrolled.knot.secret not in unit
    conf = enrolled.root("c9dnsap", f"cat /etc/letsencrypt/renewal/{names_of('c9dnsap')[0]}.conf")
    assert "authenticator = dns-rfc2136" in conf.stdout, conf.stdout
    assert enrolled.knot.secret not in conf.stdout


def test_the_secret_is_in_no_log_or_other_file_on_the_hosts(enrolled: Lab9) -> None:
    secret = enrolled.knot.secret + "\n"
    for host, path in SECRET_FILES.items():
        journal = enrolled.root(host, "journalctl --no-pager -o export")
        assert journal.returncode == 0 and journal.stdout, (host, journal.stderr)
        assert enrolled.knot.secret not in journal.stdout, (
            host,
            "the TSIG secret is in the journal",
        )
        swept = enrolled.root(host, f"grep -rlsF -f /dev/stdin {SWEEP}; true", secret)
        assert swept.stdout.split() == [path], (host, swept.stdout.split())


def fleet_status(lab9: Lab9) -> tuple[int, dict[str, dict[str, object]]]:
    """``acmefleet status --json`` of the lab, asking the server's renewalInfo."""
    done = subprocess.run(
        [
            ACMEFLEET,
            "status",
            "-i",
            str(lab9.inventory),
            "--json",
            "--ca-bundle",
            str(lab9.acme.ca_bundle),
            "--server",
            lab9.acme.base_url,
            "--prometheus",
            str(lab9.inventory.parent / "acmefleet.prom"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stdout.startswith("["), done.stdout + done.stderr
    return done.returncode, {row["host"]: row for row in json.loads(done.stdout)}


def admin(lab9: Lab9, *args: str) -> str:
    done = subprocess.run(
        [ACMEFLEET, "admin", *args, "--data-dir", str(lab9.acme.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_revoked_certificate_and_a_stopped_timer_are_flagged_then_renewed(
    enrolled: Lab9,
) -> None:
    """One host's certificate revoked in the console while its renew-check timer is stopped
    (a timer that silently stopped): OCSP says revoked at once, ``status`` flags the host
    (``revoked``, ``timer-inactive``) and exits 1; ``acmefleet renew --limit`` replaces the
    certificate; with the timer started again ``status`` is green."""
    host = "c9httpngx"
    timer = f"acmefleet-renew-check-certbot-nginx-{names_of(host)[0]}.timer"
    stopped = enrolled.root(host, f"systemctl stop {timer}")
    assert stopped.returncode == 0, stopped.stderr
    served = probe(enrolled, [host])[host]
    listed = json.loads(admin(enrolled, "cert", "list", "--name", names_of(host)[0], "--json"))
    [current] = [c for c in listed if c["serial"] == served.serial]
    admin(enrolled, "cert", "revoke", current["id"], "--reason", "1")
    assert revocation_probe.ocsp_status(served.leaf_der) == "revoked"
    code, rows = fleet_status(enrolled)
    assert code == 1, rows
    assert rows[host]["flags"] == ["revoked", "past-window", "timer-inactive"], rows[host]
    assert all(rows[h]["flags"] == [] for h in rows if h != host), rows
    metrics = (enrolled.inventory.parent / "acmefleet.prom").read_text()
    assert f'acmefleet_host_flag{{host="{host}",flag="revoked"}} 1' in metrics
    forced = subprocess.run(
        [
            ACMEFLEET,
            "renew",
            "-i",
            str(enrolled.inventory),
            "--limit",
            host,
            "--json",
            "--ca-bundle",
            str(enrolled.acme.ca_bundle),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert forced.returncode == 0, forced.stdout + forced.stderr
    [row] = json.loads(forced.stdout)
    assert row["status"] == "renewed" and row["serial_before"] == served.serial, row
    assert enrolled.root(host, f"systemctl start {timer}").returncode == 0
    code, rows = fleet_status(enrolled)
    assert code == 0 and rows[host]["flags"] == [] and rows[host]["ocsp"] == "good", rows[host]


def test_a_host_moved_to_the_relayed_endpoint_serves_the_upstreams_certificate(
    enrolled: Lab9,
) -> None:
    host = "c9httpap"
    document = inventory_document(
        enrolled.lab, enrolled.hosts, enrolled.knot, endpoints={host: "relayed"}
    )
    enrolled.inventory.write_text(yaml.safe_dump(document))
    # The lab trusts pebble's root as hosts trust a public CA's: in the system's store.
    root_pem = pebble_root(enrolled.pebble).public_bytes(serialization.Encoding.PEM).decode()
    trusted = enrolled.root(
        host,
        "cat > /usr/local/share/ca-certificates/pebble-root.crt && update-ca-certificates",
        stdin=root_pem,
    )
    assert trusted.returncode == 0, trusted.stderr
    run = enrolled.enroll("--limit", host)
    assert run.rc == 0, run.output[-10000:]
    root_file = enrolled.inventory.parent / "pebble-root.pem"
    root_file.write_text(root_pem)
    every = {h.name: h for h in load_fleet(enrolled.inventory).hosts}
    served = tls.probe_all([every[host]], root_file)[host]
    # The lab trusts pebble's root: what the host serves chains to it, for its names.
    assert served.verified, f"{host}: {served.problem}"
    assert sorted(served.names) == sorted(names_of(host)), served
    pem = enrolled.root(host, f"cat /etc/letsencrypt/live/{names_of(host)[0]}/fullchain.pem")
    leaf = check_chains_to_pebble(pem.stdout.encode(), enrolled.pebble, names_of(host))
    with closing(sqlite3.connect(enrolled.acme.data_dir / "acmefleet.db")) as conn:
        [(ca_level, endpoint)] = conn.execute(
            "SELECT ca_level, endpoint FROM certificates WHERE serial_hex = ?",
            (format(leaf.serial_number, "x"),),
        ).fetchall()
    assert (ca_level, endpoint) == ("upstream:pebble", "relayed")
    assert enrolled.knot.secret not in enrolled.acme.log_text()
    assert enrolled.pebble.eab_keys["kid-1"] not in enrolled.acme.log_text()
    assert enrolled.pebble.eab_keys["kid-1"] not in run.output


def probe(lab9: Lab9, hosts: list[str]) -> dict[str, tls.ServedCertificate]:
    every = {h.name: h for h in load_fleet(lab9.inventory).hosts}
    return tls.probe_all([every[h] for h in hosts], lab9.acme.ca_bundle)
