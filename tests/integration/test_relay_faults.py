"""Faults in the middle of a relayed order (issue 16): acmefleet killed, the upstream CA
restarted. Each local order must end valid (or cleanly invalid) and the upstream must hold
at most one order for it.

The relay is held at a known point by stopping knotd (SIGSTOP): the upstream order is
placed and its URL recorded, and the relay waits on its RFC 2136 update. Then the fault,
then knotd continues.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from acmefleet.store.schema import upstream_orders
from acmefleet.upstream.account_key import load_account_key
from acmefleet.upstream.client import UpstreamClient
from tests.integration.test_relay import relay_config
from tests.support.acme_client import AcmeClient, make_csr
from tests.support.acmefleet_server import AcmefleetServer, _serving, running_acmefleet
from tests.support.knot import ZONE, KnotServer
from tests.support.pebble import PebbleServer
from tests.support.procs import tls_context
from tests.support.upstream import check_chains_to_pebble, validating_pebble

pytestmark = pytest.mark.integration


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[KnotServer]:
    with KnotServer(tmp_path / "knot") as server:
        yield server


@pytest.fixture
def pebble(tmp_path: Path, knot: KnotServer) -> Iterator[PebbleServer]:
    with validating_pebble(tmp_path / "pebble", knot, authz_reuse=0) as server:
        yield server


@pytest.fixture
def acmefleet(tmp_path: Path, pebble: PebbleServer, knot: KnotServer) -> Iterator[AcmefleetServer]:
    workdir = tmp_path / "relay"
    workdir.mkdir()
    with running_acmefleet(workdir, extra_config=relay_config(workdir, pebble, knot)) as server:
        server.org("acme")
        server.add_domain("acme", ZONE, validated=True, scope="subdomains")
        yield server


def _finalize(acmefleet: AcmefleetServer, names: list[str]) -> tuple[AcmeClient, str]:
    client = AcmeClient(acmefleet.directory("public"), acmefleet.ca_bundle)
    assert client.new_account(eab=acmefleet.mint_eab("acme", "public")).status_code == 201
    created = client.new_order(names)
    assert created.status_code == 201, created.text
    csr, _key = make_csr(names)
    finalized = client.finalize(created.json()["finalize"], csr)
    assert finalized.json()["status"] == "processing", finalized.text
    return client, created.headers["Location"]


def _placed_url(acmefleet: AcmefleetServer, timeout: float = 30) -> str:
    """The upstream order's URL, once the relay recorded it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with acmefleet.db() as database, database.read() as conn:
            url = conn.execute(select(upstream_orders.c.upstream_order_url)).scalar()
        if url:
            return str(url)
        time.sleep(0.1)
    raise AssertionError(f"the relay placed no upstream order:\n{acmefleet.log_text()[-3000:]}")


def _upstream_orders_for(
    acmefleet: AcmefleetServer, pebble: PebbleServer, names: list[str]
) -> list[str]:
    """The orders pebble holds, for the relay's current account, that name ``names``."""
    folder = acmefleet.data_dir / "upstreams" / "pebble"
    account_url = json.loads((folder / "account.json").read_text())["url"]
    signer = load_account_key(folder / "account.key")

    async def run() -> list[str]:
        async with UpstreamClient(
            pebble.directory_url,
            signer,
            verify=tls_context(pebble.ca_bundle),
            account_url=account_url,
        ) as client:
            matching = []
            for url in await client.account_orders():
                if sorted((await client.order(url)).identifiers) == sorted(names):
                    matching.append(url)
            return matching

    return asyncio.run(run())


def _stopped(knot: KnotServer) -> None:
    assert knot.proc is not None
    os.kill(knot.proc.pid, signal.SIGSTOP)


def _continued(knot: KnotServer) -> None:
    assert knot.proc is not None
    os.kill(knot.proc.pid, signal.SIGCONT)


def test_acmefleet_killed_mid_order_resumes_the_same_upstream_order(
    acmefleet: AcmefleetServer, pebble: PebbleServer, knot: KnotServer
) -> None:
    names = [f"killed-{secrets.token_hex(3)}.{ZONE}"]
    _stopped(knot)
    try:
        client, order_url = _finalize(acmefleet, names)
        placed = _placed_url(acmefleet)
        assert acmefleet.proc is not None
        os.killpg(acmefleet.proc.pid, signal.SIGKILL)
        acmefleet.proc.wait()
    finally:
        _continued(knot)
    with _serving(acmefleet, workers=1):
        body = client.poll_order(order_url, until={"valid", "invalid"}, timeout=90)
        assert body["status"] == "valid", body
        pem = client.download_certificate(body["certificate"]).encode()
    check_chains_to_pebble(pem, pebble, names)
    assert _upstream_orders_for(acmefleet, pebble, names) == [placed]
    # The restarted server took the dead one's lease over at once (same host, its pid gone)
    # and continued the recorded upstream order rather than placing another.
    log = acmefleet.log_text()
    assert "took order" in log and "placed upstream" not in log, log[-3000:]


def test_the_upstream_restarted_mid_order_loses_it_and_the_relay_places_it_once_more(
    acmefleet: AcmefleetServer, pebble: PebbleServer, knot: KnotServer
) -> None:
    names = [f"restarted-{secrets.token_hex(3)}.{ZONE}"]
    _stopped(knot)
    try:
        client, order_url = _finalize(acmefleet, names)
        placed = _placed_url(acmefleet)
        pebble.restart()  # all it held is gone: the account, the order
    finally:
        _continued(knot)
    body = client.poll_order(order_url, until={"valid", "invalid"}, timeout=120)
    assert body["status"] == "valid", (body, acmefleet.log_text()[-3000:])
    pem = client.download_certificate(body["certificate"]).encode()
    check_chains_to_pebble(pem, pebble, names)
    # The new pebble holds exactly one order for it (the old one died with the old pebble).
    held = _upstream_orders_for(acmefleet, pebble, names)
    assert (len(held) == 1 and held != [placed]) or held == [placed], held
    assert len(held) == 1
    log = acmefleet.log_text()
    assert "does not know this server's account" in log or "no longer has" in log
