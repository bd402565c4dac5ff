"""The public endpoint relaying to an upstream CA (issue 16), end to end with real parts.

Debian's pebble plays the public CA: EAB required, its VA really validating dns-01 through
a knotd started here, which acmefleet updates over RFC 2136 with a TSIG key. acmefleet's
public endpoint names pebble as its ``upstream``; the organisation's domain is validated in
the console, so the hosts' clients prove nothing to acmefleet, and acmefleet proves control
to pebble through the DNS. certbot and lego, unchanged, get certificates that chain to
pebble's root; the database records the relay; a name pebble refuses ends the order invalid
with pebble's problem as a subproblem.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from acmefleet.store.schema import certificates, upstream_orders, upstream_revocations
from tests.support.acme_client import AcmeClient, make_csr
from tests.support.acmefleet_server import AcmefleetServer, running_acmefleet
from tests.support.clients import (
    certbot_register_args,
    read_chain,
    run_certbot,
    run_lego,
    serial_hex,
)
from tests.support.knot import ALGORITHM, KEY_NAME, ZONE, KnotServer
from tests.support.pebble import PebbleServer
from tests.support.procs import tls_context
from tests.support.upstream import (
    check_chains_to_pebble,
    pebble_status,
    private_file,
    validating_pebble,
)

pytestmark = pytest.mark.integration

REFUSED = f"refused-by-upstream.{ZONE}"


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    with KnotServer(tmp_path_factory.mktemp("knot"), query_stats=True) as server:
        yield server


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory, knot: KnotServer) -> Iterator[PebbleServer]:
    # Every order proves control again, through knotd; one name pebble refuses.
    workdir = tmp_path_factory.mktemp("pebble")
    with validating_pebble(workdir, knot, authz_reuse=0, domainBlocklist=[REFUSED]) as server:
        yield server


def relay_config(workdir: Path, pebble: PebbleServer, knot: KnotServer) -> str:
    """The public endpoint's ``upstream`` (appended after the template's last table, which
    is that endpoint) and the ``[upstreams.pebble]`` table; secrets in 0600 files."""
    hmac_file = private_file(workdir / "pebble-eab.hmac", pebble.eab_keys["kid-1"])
    tsig_file = private_file(workdir / "tsig.secret", knot.secret)
    return f"""upstream = "pebble"

[upstreams.pebble]
directory_url = "{pebble.directory_url}"
ca_bundle = "{pebble.ca_bundle}"
eab_kid = "kid-1"
eab_hmac_key_file = "{hmac_file}"
contact = ["mailto:pki@example.org"]
retry_for_seconds = 60

[upstreams.pebble.dns01]
server = "127.0.0.1"
port = {knot.port}
key_name = "{KEY_NAME}"
algorithm = "{ALGORITHM}"
secret_file = "{tsig_file}"
propagation_seconds = 0  # one authoritative server: no secondaries to wait for
"""


@pytest.fixture(scope="module")
def acmefleet(
    tmp_path_factory: pytest.TempPathFactory, pebble: PebbleServer, knot: KnotServer
) -> Iterator[AcmefleetServer]:
    workdir = tmp_path_factory.mktemp("relay")
    with running_acmefleet(workdir, extra_config=relay_config(workdir, pebble, knot)) as server:
        server.org("acme")
        server.add_domain("acme", ZONE, validated=True, scope="subdomains")
        yield server
        log = server.log_text()
        account_key = (server.data_dir / "upstreams" / "pebble" / "account.key").read_text()
    assert "Traceback" not in log, log[-4000:]
    key_body = [line for line in account_key.splitlines() if "-----" not in line]
    for secret in (pebble.eab_keys["kid-1"], knot.secret, *key_body):
        assert secret not in log, "an upstream secret appeared in the server log"


def relay_rows(server: AcmefleetServer, serial: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with server.db() as database, database.read() as conn:
        cert = conn.execute(select(certificates).where(certificates.c.serial_hex == serial)).one()
        relayed = conn.execute(
            select(upstream_orders).where(upstream_orders.c.order_id == cert.order_id)
        ).one()
    return dict(cert._mapping), dict(relayed._mapping)


def check_relayed(server: AcmefleetServer, leaf: x509.Certificate, pebble: PebbleServer) -> None:
    cert, relayed = relay_rows(server, serial_hex(leaf))
    assert cert["ca_level"] == "upstream:pebble" and cert["endpoint"] == "public"
    assert relayed["state"] == "valid" and relayed["upstream"] == "pebble"
    assert relayed["upstream_order_url"].startswith(pebble.directory_url.removesuffix("dir"))
    assert relayed["certificate_url"].startswith(pebble.directory_url.removesuffix("dir"))


def test_certbot_gets_a_certificate_of_the_upstream(
    acmefleet: AcmefleetServer, pebble: PebbleServer, knot: KnotServer, tmp_path: Path
) -> None:
    names = [f"certbot.{ZONE}", f"www.certbot.{ZONE}"]
    eab = acmefleet.mint_eab("acme", "public")
    txt_before = knot.query_counts().get("TXT", 0)
    run = run_certbot(
        [
            "certonly",
            *certbot_register_args(acmefleet.directory("public"), eab),
            "--standalone",
            "--http-01-port",
            str(acmefleet.http01_port),
            *[arg for name in names for arg in ("-d", name)],
            "--cert-name",
            names[0],
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=tmp_path,
    ).check()
    pem = (tmp_path / "config" / "live" / names[0] / "fullchain.pem").read_bytes()
    leaf = check_chains_to_pebble(pem, pebble, names)
    check_relayed(acmefleet, leaf, pebble)
    # pebble's VA asked knotd for the records acmefleet wrote: one per name.
    assert knot.query_counts().get("TXT", 0) >= txt_before + len(names), run.describe()


def test_lego_gets_a_certificate_of_the_upstream(
    acmefleet: AcmefleetServer, pebble: PebbleServer, tmp_path: Path
) -> None:
    name = f"lego.{ZONE}"
    run_lego(
        ["--http", "--http.port", f"127.0.0.1:{acmefleet.http01_port}", "-d", name, "run"],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=tmp_path,
        directory=acmefleet.directory("public"),
        eab=acmefleet.mint_eab("acme", "public"),
    ).check()
    pem = (tmp_path / "certificates" / f"{name}.crt").read_bytes()
    leaf = check_chains_to_pebble(pem, pebble, [name])
    check_relayed(acmefleet, leaf, pebble)
    assert read_chain(tmp_path / "certificates" / f"{name}.issuer.crt")[0].subject == leaf.issuer


def _finalized(acmefleet: AcmefleetServer, names: list[str]) -> tuple[AcmeClient, dict[str, Any]]:
    client = AcmeClient(acmefleet.directory("public"), acmefleet.ca_bundle)
    assert client.new_account(eab=acmefleet.mint_eab("acme", "public")).status_code == 201
    created = client.new_order(names)
    assert created.status_code == 201, created.text
    order_url = created.headers["Location"]
    csr, _key = make_csr(names)
    finalized = client.finalize(created.json()["finalize"], csr)
    assert finalized.status_code == 200, finalized.text
    assert finalized.json()["status"] == "processing"
    assert 1 <= int(finalized.headers["Retry-After"]) <= 3600
    return client, {"url": order_url}


def test_a_name_the_upstream_refuses_ends_the_order_invalid_with_its_problem(
    acmefleet: AcmefleetServer,
) -> None:
    client, order = _finalized(acmefleet, [REFUSED])
    body = client.poll_order(order["url"], until={"valid", "invalid"}, timeout=60)
    assert body["status"] == "invalid", body
    error = body["error"]
    assert error["type"] == "urn:ietf:params:acme:error:rejectedIdentifier", error
    assert "upstream CA pebble" in error["detail"]
    assert error["subproblems"][0]["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"
    with acmefleet.db() as database, database.read() as conn:
        relayed = conn.execute(
            select(upstream_orders).where(upstream_orders.c.state == "invalid")
        ).all()
    assert len(relayed) == 1 and relayed[0].upstream_order_url is None  # refused at newOrder
    assert json.dumps(relayed[0].last_error).count("rejectedIdentifier") >= 1


def test_a_relayed_order_polled_while_processing_says_when_to_ask_again(
    acmefleet: AcmefleetServer, pebble: PebbleServer
) -> None:
    names = [f"poll-{secrets.token_hex(3)}.{ZONE}"]
    client, order = _finalized(acmefleet, names)
    body = client.poll_order(order["url"], until={"valid", "invalid"}, timeout=60)
    assert body["status"] == "valid", body
    pem = client.download_certificate(body["certificate"]).encode()
    check_chains_to_pebble(pem, pebble, names)


def _until_revoked_upstream(acmefleet: AcmefleetServer, pebble: PebbleServer, serial: str) -> None:
    deadline = time.monotonic() + 30
    while pebble_status(pebble, serial) != "Revoked":
        assert time.monotonic() < deadline, acmefleet.log_text()[-3000:]
        time.sleep(0.2)
    with acmefleet.db() as database, database.read() as conn:
        cert = conn.execute(select(certificates).where(certificates.c.serial_hex == serial)).one()
        state = conn.execute(
            select(upstream_revocations.c.state).where(
                upstream_revocations.c.certificate_id == cert.id
            )
        ).scalar_one()
    assert cert.revoked_at is not None and state in ("queued", "done")


def _relayed_certificate(
    acmefleet: AcmefleetServer, pebble: PebbleServer, name: str
) -> tuple[AcmeClient, bytes]:
    client, order = _finalized(acmefleet, [name])
    body = client.poll_order(order["url"], until={"valid", "invalid"}, timeout=60)
    assert body["status"] == "valid", body
    pem = client.download_certificate(body["certificate"]).encode()
    leaf = check_chains_to_pebble(pem, pebble, [name])
    assert pebble_status(pebble, serial_hex(leaf)) == "Valid"
    return client, pem


def test_revoking_a_relayed_certificate_revokes_it_at_the_upstream(
    acmefleet: AcmefleetServer, pebble: PebbleServer
) -> None:
    client, pem = _relayed_certificate(acmefleet, pebble, f"revoke-{secrets.token_hex(3)}.{ZONE}")
    leaf = x509.load_pem_x509_certificates(pem)[0]
    answer = client.revoke(leaf.public_bytes(serialization.Encoding.DER), reason=1)
    assert answer.status_code == 200, answer.text
    _until_revoked_upstream(acmefleet, pebble, serial_hex(leaf))


def test_revoking_a_relayed_certificate_in_the_console_revokes_it_at_the_upstream(
    acmefleet: AcmefleetServer, pebble: PebbleServer
) -> None:
    _client, pem = _relayed_certificate(acmefleet, pebble, f"console-{secrets.token_hex(3)}.{ZONE}")
    serial = serial_hex(x509.load_pem_x509_certificates(pem)[0])
    cert, _relayed = relay_rows(acmefleet, serial)
    with httpx.Client(verify=tls_context(acmefleet.ca_bundle), trust_env=False) as http:
        answer = http.post(
            f"{acmefleet.base_url}/admin/api/v1/certificates/{cert['id']}/revoke",
            json={"reason": 4},
            headers={"Authorization": f"Bearer {acmefleet.admin_token}"},
        )
    assert answer.status_code == 200, answer.text
    _until_revoked_upstream(acmefleet, pebble, serial)


def test_an_account_deactivated_while_its_order_is_relayed_gets_no_certificate(
    acmefleet: AcmefleetServer, knot: KnotServer
) -> None:
    """Authority is checked again before the upstream finalizes: the relay is held at its
    RFC 2136 update (knotd stopped) while the account deactivates itself."""
    assert knot.proc is not None
    os.kill(knot.proc.pid, signal.SIGSTOP)
    try:
        client, order = _finalized(acmefleet, [f"gone-{secrets.token_hex(3)}.{ZONE}"])
        deadline = time.monotonic() + 30
        while _placed_count(acmefleet, order["url"]) == 0:
            assert time.monotonic() < deadline, acmefleet.log_text()[-3000:]
            time.sleep(0.1)
        assert client.deactivate().status_code == 200
    finally:
        os.kill(knot.proc.pid, signal.SIGCONT)
    order_id = order["url"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 60
    with acmefleet.db() as database:
        while True:
            with database.read() as conn:
                row = conn.execute(
                    select(upstream_orders).where(upstream_orders.c.order_id == order_id)
                ).one()
            if row.state != "queued" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert row.state == "invalid", (row, acmefleet.log_text()[-3000:])
    assert "deactivated" in row.last_error["detail"], row.last_error
    assert acmefleet.count("certificates", order_id=order_id) == 0


def _placed_count(acmefleet: AcmefleetServer, order_url: str) -> int:
    order_id = order_url.rsplit("/", 1)[1]
    with acmefleet.db() as database, database.read() as conn:
        return len(
            conn.execute(
                select(upstream_orders).where(
                    upstream_orders.c.order_id == order_id,
                    upstream_orders.c.upstream_order_url.is_not(None),
                )
            ).all()
        )
