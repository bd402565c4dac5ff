"""``acmefleet rollout`` on a fleet of test hosts with one broken host, then ``--resume``.

Two of the hosts are on the endpoint ``relayed``, a public endpoint of the role-deployed
server whose certificates come from an upstream CA (issue 16): Debian's pebble on the
controller's lab address, EAB required, validating dns-01 through a knotd beside it, which
the server on its lab host updates over RFC 2136. The role configures the upstream from the
inventory (secrets as Vault would hand them, never in Ansible's output); the hosts prove
http-01 to acmefleet, acmefleet proves dns-01 to pebble, and the roll-out verifies what
they serve against pebble's root (``acmefleet_trust_bundle``), as a site verifies a public
CA's certificates against its system's roots.

First a dry run (``--check``): enroll.yml in Ansible's check mode on every host, which
reports per host the tasks that would change, and deploys, mints and changes nothing.
The broken host passes preflight but cannot reach the ACME server (its own firewall rejects
the connection), so its enrolment fails after an EAB was minted for it: the roll-out goes
on within the failure budget, reports it, revokes that EAB and exits 1. Once the host is
fixed, ``--resume`` enrols it alone, in the wave it had (no new canary), and leaves the
hosts recorded done as they were (their outcomes kept, not probed again); another roll-out
changes nothing without running Ansible.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from acmefleet.console.client import RemoteBackend
from acmefleet.lab import network
from acmefleet.lab.network import GATEWAY
from tests.hosts.fleetlab import Spec, lab_fleet, rollout
from tests.hosts.support_acme import DOMAIN
from tests.support.knot import ALGORITHM, KEY_NAME, KnotServer
from tests.support.pebble import PebbleServer
from tests.support.upstream import pebble_root, pebble_status, validating_pebble

pytestmark = pytest.mark.hosts
# Both stacks on Debian 12 and 13; one web host reached as root, the others as the sudo user.
HOSTS = [
    Spec("r4srv", 70, None),
    Spec("r4a1", 71, "certbot_apache"),
    Spec("r4n1", 72, "lego_nginx", "trixie"),
    Spec("r4a2", 73, "certbot_apache", "trixie"),
    Spec("r4n2", 74, "lego_nginx"),
    Spec("r4a3", 75, "certbot_apache", "bookworm", "root"),
    Spec("r4bad", 76, "lego_nginx", "trixie"),
]
BLOCK_TABLE = "acmefleet_test_block"
RELAYED = {"r4a2", "r4n2"}  # on the endpoint relayed to pebble


@contextmanager
def upstream_ca(workdir: Path, inventory: Path) -> Iterator[PebbleServer]:
    """pebble and its knotd on the lab's gateway address; the inventory's server given the
    endpoint ``relayed`` and its upstream, the RELAYED hosts put on it, and the roll-out
    told to trust pebble's root for the hosts' certificates."""
    with (
        KnotServer(workdir / "knot", zone=DOMAIN, host=GATEWAY, port=53) as knot,
        validating_pebble(workdir / "pebble", knot, authz_reuse=0, host=GATEWAY) as pebble,
    ):
        root = workdir / "pebble-root.pem"
        root.write_bytes(pebble_root(pebble).public_bytes(serialization.Encoding.PEM))
        document = yaml.safe_load(inventory.read_text())
        document["vars"]["acmefleet_trust_bundle"] = str(root)
        server_vars = document["acme_servers"][0]["vars"]
        server_vars["acme_server_endpoints"] = [
            {"name": "private", "type": "private", "ca": "private", "profiles": ["private-server"]},
            {
                "name": "relayed",
                "type": "public",
                "ca": "public",
                "profiles": ["public-dv"],
                "challenges": ["http-01"],
                "upstream": "pebble",
            },
        ]
        server_vars["acme_server_upstreams"] = {
            "pebble": {
                "directory_url": pebble.directory_url,
                "ca_bundle": Path(pebble.ca_bundle).read_text(),
                "eab_kid": "kid-1",
                "eab_hmac_key": pebble.eab_keys["kid-1"],
                "contact": [f"mailto:ops@{DOMAIN}"],
                "dns01": {
                    "server": GATEWAY,
                    "port": 53,
                    "key_name": KEY_NAME,
                    "algorithm": ALGORITHM,
                    "secret": knot.secret,
                    "propagation_seconds": 0,
                },
            }
        }
        for host in document["hosts"]:
            if host["name"] in RELAYED:
                host["endpoint"] = "relayed"
        inventory.write_text(yaml.safe_dump(document, sort_keys=False))
        yield pebble


def firewall(name: str, server_address: str, block: bool) -> None:
    """In the host's own network namespace: reject its connections to the ACME server."""
    rules = (
        f"table inet {BLOCK_TABLE} {{\n  chain out {{\n"
        "    type filter hook output priority 0; policy accept;\n"
        f"    ip daddr {server_address} tcp dport 8555 reject with tcp reset\n  }}\n}}\n"
        if block
        else f"delete table inet {BLOCK_TABLE}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", network.namespace(name), "nft", "-f", "-"],
        input=rules,
        check=True,
        capture_output=True,
        text=True,
    )


def test_rollout_waves_failure_resume_and_repeat(tmp_path: Path) -> None:
    with (
        lab_fleet(tmp_path, HOSTS) as (_lab, hosts, inventory),
        upstream_ca(tmp_path, inventory) as pebble,
    ):
        server = hosts["r4srv"]
        firewall("r4bad", server.address, block=True)
        code, rows, output = rollout(inventory, "--check")
        # before the server is deployed its CA bundle is not here for the hosts' check runs
        assert code == 2 and "CA bundle" in output, output[-3000:]
        assert not (inventory.parent / ".acmefleet" / "rollout-state.json").exists()

        code, rows, output = rollout(inventory, "--waves", "1,50%,100%", "--max-fail", "1")
        assert code == 1, output[-6000:]
        by_host = {r["host"]: r for r in rows}
        first = by_host
        assert set(by_host) == {s.name for s in HOSTS if s.stack}, output[-3000:]
        for name, *_ in HOSTS[1:-1]:
            assert by_host[name]["status"] == "enrolled", (
                f"{name}: {by_host[name]}\n{output[-4000:]}"
            )
            assert by_host[name]["serial"]
        for name in RELAYED:  # verified against pebble's root; pebble's own certificate
            assert "Pebble" in str(by_host[name]["issuer"]), by_host[name]
            assert pebble_status(pebble, str(by_host[name]["serial"])) == "Valid"
        for name in {s.name for s in HOSTS[1:-1]} - RELAYED:
            assert "Pebble" not in str(by_host[name]["issuer"]), by_host[name]
        for secret in (pebble.eab_keys["kid-1"],):
            assert secret not in output, "the upstream's HMAC key is in the roll-out's output"
        bad = by_host["r4bad"]
        assert bad["status"] == "failed" and "revoked" in str(bad["error"]), bad
        state = json.loads((inventory.parent / ".acmefleet" / "rollout-state.json").read_text())
        kid = state["hosts"]["r4bad"]["eab_kid"]
        token = (inventory.parent / ".acmefleet" / "r4srv-admin-token").read_text().strip()
        # the report page, written into the state directory: every host, its phases (the
        # packages too: wave 1's by prepare.yml, the later waves' inside enroll.yml), no token
        page = (inventory.parent / ".acmefleet" / "report.html").read_text()
        for name in by_host:
            assert f'<g class="row" data-host="{name}">' in page, name
            assert "packages" in state["hosts"][name]["phases"], (name, state["hosts"][name])
        assert state["hosts"]["r4bad"]["failed_phase"] == "enrol"
        assert token not in page
        bundle = inventory.parent / ".acmefleet" / "r4srv-ca-bundle.pem"
        with RemoteBackend(f"https://{server.address}:8555", token, ca_bundle=bundle) as api:
            assert api.get_eab(kid)["status"] == "revoked"
            assert len(api.list_accounts()) == 5
        assert token not in output

        firewall("r4bad", server.address, block=False)
        state_file = inventory.parent / ".acmefleet" / "rollout-state.json"
        saved = state_file.read_bytes()
        with RemoteBackend(f"https://{server.address}:8555", token, ca_bundle=bundle) as api:
            credentials = len(api.list_eab())
        code, rows, output = rollout(inventory, "--check")
        assert code == 0, output[-6000:]
        by_host = {r["host"]: r for r in rows}
        assert by_host["r4bad"]["status"] == "would-enrol", output[-4000:]
        # the would-be changes are listed per host, and nothing was minted or saved
        assert by_host["r4bad"]["changes"] and by_host["r4bad"]["would_change"], output[-4000:]
        assert {r["status"] for h, r in by_host.items() if h != "r4bad"} == {"skipped"}
        with RemoteBackend(f"https://{server.address}:8555", token, ca_bundle=bundle) as api:
            assert len(api.list_accounts()) == 5 and len(api.list_eab()) == credentials
        assert state_file.read_bytes() == saved

        code, rows, output = rollout(inventory, "--resume")
        assert code == 0, output[-6000:]
        by_host = {r["host"]: r for r in rows}
        assert by_host["r4bad"]["status"] == "enrolled", output[-4000:]
        # continued in the wave it had in the plan (1 | r4a2, r4a3 | r4bad, r4n1, r4n2)
        assert by_host["r4bad"]["wave"] == first["r4bad"]["wave"] == 3
        for name, row in by_host.items():
            if name != "r4bad":  # recorded done: kept as the first run left them
                assert row["status"] == "enrolled" and row["serial"] == first[name]["serial"]
                assert row["wave"] == first[name]["wave"]

        started = time.monotonic()
        code, rows, output = rollout(
            inventory,
            "--server-exists",
            "--api-url",
            f"https://{server.address}:8555",
            "--token-file",
            str(inventory.parent / ".acmefleet" / "r4srv-admin-token"),
            "--ca-bundle",
            str(bundle),
        )
        assert code == 0, output[-4000:]
        assert {r["status"] for r in rows} == {"skipped"}
        assert time.monotonic() - started < 60
