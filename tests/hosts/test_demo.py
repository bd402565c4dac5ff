"""``acmefleet demo``, the README's first command: three test hosts and a real roll-out.

The demo starts an ACME server host, an Apache+Certbot host and an Nginx+Lego host, enrols
them with ``acmefleet rollout``, prints the status table and how to browse a host. The test
follows those instructions (an HTTPS request to the host, verified against the demo's CA
bundle, with the host's name as SNI), runs the demo again (nothing to do), and removes the
hosts with ``--down``.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from acmefleet.fleet.rollout_demo import DEMO_DIR, DEMO_HOSTS
from acmefleet.lab.hosts import Lab
from tests.hosts.fleetlab import require_root

pytestmark = pytest.mark.hosts
ACMEFLEET = str(Path(sys.executable).with_name("acmefleet"))
BROWSE = re.compile(r"curl --cacert (\S+) --resolve ([^:]+):443:(\S+) https://")


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACMEFLEET, "demo", *args],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def https_get(address: str, name: str, ca_bundle: Path) -> tuple[str, str]:
    """GET / from ``address`` as ``name``; the chain must verify to the demo's CA."""
    context = ssl.create_default_context(cafile=str(ca_bundle))
    with (
        socket.create_connection((address, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        issuer = dict(item[0] for item in tls.getpeercert()["issuer"])  # type: ignore[index,misc]
    return answer.split(b"\r\n", 1)[0].decode(), str(issuer.get("commonName"))


def test_demo_enrols_three_hosts_and_cleans_up() -> None:
    require_root()
    demo("--down")  # a demo left from elsewhere would make this test prove nothing
    try:
        first = demo()
        output = first.stdout + first.stderr
        assert first.returncode == 0, output[-4000:]
        assert re.search(r"demo-apache\s.*certbot_apache\s.*enrolled", output), output[-4000:]
        assert re.search(r"demo-nginx\s.*lego_nginx\s.*enrolled", output), output[-4000:]
        browse = BROWSE.search(output)
        assert browse, output[-2000:]
        bundle, name, address = Path(browse[1]), browse[2], browse[3]
        status_line, issuer = https_get(address, name, bundle)
        assert status_line.startswith("HTTP/1.1 "), status_line
        assert issuer.startswith("acmefleet"), issuer

        inventory = DEMO_DIR / "lab.fleet.yml"
        status = subprocess.run(
            [ACMEFLEET, "status", "-i", str(inventory), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {row["host"]: row for row in json.loads(status.stdout)}
        assert set(rows) == {"demo-apache", "demo-nginx"}
        assert all(row["renewal"] == "enabled" for row in rows.values()), rows

        again = demo()
        assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
        assert "2 host(s) already serve a valid certificate; 0 to enrol" in again.stdout
    finally:
        down = demo("--down")
    assert down.returncode == 0, down.stdout + down.stderr
    names = {host.name for host in Lab().list()}
    assert not names & {name for name, _, _ in DEMO_HOSTS}
