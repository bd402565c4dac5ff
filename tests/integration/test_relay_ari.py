"""Renewal information passed through the relay (issue 16, RFC 9773), end to end.

Debian's pebble 2.4 has no renewalInfo, so the upstream here is a second acmefleet server:
its private endpoint (EAB required, ARI in its directory) plays the CA the relay's public
endpoint takes its certificates from. What is shown, with both servers really running:

* the relayed certificate's renewalInfo at the relay is the upstream's window, fetched by
  the relay in the background (a host's GET never reaches the upstream);
* a window the upstream's operator pulls forward reaches the relay's renewalInfo at the
  relay's next fetch (the test moves that fetch to now instead of waiting out the six hours
  of Retry-After the upstream asked for);
* a renewal ordered with ``replaces`` at the relay is ordered with ``replaces`` upstream:
  the upstream records the old certificate as replaced by its new order.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from sqlalchemy import select, update

from acmefleet.ca.renewal_info import cert_id_of
from acmefleet.console.client import RemoteBackend
from acmefleet.store.schema import certificates, upstream_renewal_windows
from tests.support.acme_client import AcmeClient, make_csr
from tests.support.acmefleet_server import AcmefleetServer, running_acmefleet
from tests.support.procs import tls_context
from tests.support.upstream import private_file

pytestmark = pytest.mark.integration

ZONE = "relayed.example"
DEADLINE = 30.0  # seconds: a bound on a hang, not a performance figure


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmefleetServer]:
    with running_acmefleet(tmp_path_factory.mktemp("ari-upstream")) as server:
        server.org("relay-operator", ZONE)
        yield server


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, upstream: AcmefleetServer
) -> Iterator[AcmefleetServer]:
    workdir = tmp_path_factory.mktemp("ari-relay")
    kid, hmac_key = upstream.mint_eab("relay-operator", "private")
    hmac_file = private_file(workdir / "upstream-eab.hmac", hmac_key)
    extra = f"""upstream = "inner"

[upstreams.inner]
directory_url = "{upstream.directory("private")}"
ca_bundle = "{upstream.ca_bundle}"
eab_kid = "{kid}"
eab_hmac_key_file = "{hmac_file}"
retry_for_seconds = 60
"""
    with running_acmefleet(workdir, extra_config=extra) as server:
        server.org("acme")
        server.add_domain("acme", ZONE, validated=True, scope="subdomains")
        yield server
        log = server.log_text()
    assert "Traceback" not in log, log[-4000:]
    assert hmac_key not in log


def _issue(
    relay: AcmefleetServer, names: list[str], *, client: AcmeClient | None = None, **extra: Any
) -> tuple[AcmeClient, x509.Certificate]:
    if client is None:
        client = AcmeClient(relay.directory("public"), relay.ca_bundle)
        assert client.new_account(eab=relay.mint_eab("acme", "public")).status_code == 201
    created = client.new_order(names, extra=extra or None)
    assert created.status_code == 201, created.text
    csr, _key = make_csr(names)
    finalized = client.finalize(created.json()["finalize"], csr)
    assert finalized.status_code == 200, finalized.text
    body = client.poll_order(created.headers["Location"], until={"valid", "invalid"}, timeout=60)
    assert body["status"] == "valid", body
    pem = client.download_certificate(body["certificate"]).encode()
    return client, x509.load_pem_x509_certificates(pem)[0]


def _window(server: AcmefleetServer, endpoint: str, cert_id: str) -> tuple[str, str]:
    with httpx.Client(verify=tls_context(server.ca_bundle), trust_env=False) as http:
        answer = http.get(f"{server.base_url}/acme/{endpoint}/renewal-info/{cert_id}")
    assert answer.status_code == 200, answer.text
    window = answer.json()["suggestedWindow"]
    return window["start"], window["end"]


def _fetched_at(relay: AcmefleetServer, serial: str) -> datetime | None:
    with relay.db() as database, database.read() as conn:
        cert_id = conn.execute(
            select(certificates.c.id).where(certificates.c.serial_hex == serial)
        ).scalar_one()
        value: datetime | None = conn.execute(
            select(upstream_renewal_windows.c.fetched_at).where(
                upstream_renewal_windows.c.certificate_id == cert_id
            )
        ).scalar_one()
    return value


def _until_fetched_after(relay: AcmefleetServer, serial: str, after: datetime) -> None:
    deadline = time.monotonic() + DEADLINE
    while (fetched := _fetched_at(relay, serial)) is None or fetched <= after:
        assert time.monotonic() < deadline, relay.log_text()[-3000:]
        time.sleep(0.2)


def _fetch_again_now(relay: AcmefleetServer) -> datetime:
    """What the upstream's Retry-After (six hours) would do, done now."""
    now = datetime.now(UTC)
    with relay.db() as database, database.write() as conn:
        conn.execute(update(upstream_renewal_windows).values(next_fetch_at=now))
    return now


def test_the_relayed_certificates_window_is_the_upstreams(
    relay: AcmefleetServer, upstream: AcmefleetServer
) -> None:
    names = [f"ari-{secrets.token_hex(3)}.{ZONE}"]
    _client, leaf = _issue(relay, names)
    serial = format(leaf.serial_number, "x")
    assert upstream.count("certificates", serial_hex=serial) == 1  # the upstream's own
    cert_id = str(cert_id_of(leaf))
    _until_fetched_after(relay, serial, datetime.min.replace(tzinfo=UTC))
    assert _window(relay, "public", cert_id) == _window(upstream, "private", cert_id)

    # The upstream's operator pulls the certificate's renewal forward.
    with RemoteBackend(
        upstream.base_url, upstream.admin_token, ca_bundle=upstream.ca_bundle
    ) as console:
        console.pull_forward_renewals(serials=(serial,), reason="incident drill", within_hours=1)
    pulled = _window(upstream, "private", cert_id)
    assert datetime.fromisoformat(pulled[1]) <= datetime.now(UTC) + timedelta(hours=1, minutes=1)
    assert _window(relay, "public", cert_id) != pulled  # not before the relay asks again

    _until_fetched_after(relay, serial, _fetch_again_now(relay))
    assert _window(relay, "public", cert_id) == pulled


def test_a_renewal_ordered_with_replaces_replaces_upstream_too(
    relay: AcmefleetServer, upstream: AcmefleetServer
) -> None:
    names = [f"renew-{secrets.token_hex(3)}.{ZONE}"]
    client, old = _issue(relay, names)
    old_serial = format(old.serial_number, "x")
    _client, new = _issue(relay, names, client=client, replaces=str(cert_id_of(old)))
    with upstream.db() as database, database.read() as conn:
        replaced_by = conn.execute(
            select(certificates.c.replaced_by).where(certificates.c.serial_hex == old_serial)
        ).scalar_one()
        new_order = conn.execute(
            select(certificates.c.order_id).where(
                certificates.c.serial_hex == format(new.serial_number, "x")
            )
        ).scalar_one()
    assert replaced_by == new_order


def test_a_cert_id_the_relay_did_not_issue_is_404_there(relay: AcmefleetServer) -> None:
    unknown = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    with httpx.Client(verify=tls_context(relay.ca_bundle), trust_env=False) as http:
        answer = http.get(f"{relay.base_url}/acme/public/renewal-info/{unknown}")
    assert answer.status_code == 404
