"""The upstream CA's client (acmefleet/upstream) against Debian's real pebble playing the
public CA, with EAB required and its VA resolving through a real knotd that the client
updates over RFC 2136 (TSIG).

What is shown: the account is registered with the upstream's EAB, kept, and found again by
its key after the data directory lost its URL; a certificate for a name and its wildcard is
issued through dns-01 records the client wrote (pebble's TXT queries are counted at knotd)
and withdrew; an authorization pebble already holds needs no record; an update the DNS
server refuses, or a name no zone of it holds, fails naming the record and the rcode.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import dns.rdatatype
import pytest

from acmefleet.config import Rfc2136Config, UpstreamConfig
from acmefleet.server.upstream import dns_publisher, ensure_account, open_client
from acmefleet.upstream.client import UpstreamClient
from acmefleet.upstream.dns01 import Rfc2136Publisher, Rfc2136Target
from acmefleet.upstream.errors import DnsUpdateError, UpstreamError
from tests.support.acme_client import make_csr
from tests.support.knot import ALGORITHM, KEY_NAME, ZONE, KnotServer
from tests.support.pebble import PebbleServer
from tests.support.upstream import check_chains_to_pebble, private_file, validating_pebble

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    with KnotServer(tmp_path_factory.mktemp("knot"), query_stats=True) as server:
        yield server


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory, knot: KnotServer) -> Iterator[PebbleServer]:
    # Pebble really validates, through knotd, and always reuses an authorization it holds.
    workdir = tmp_path_factory.mktemp("pebble")
    with validating_pebble(workdir, knot, authz_reuse=100, eab_count=2) as server:
        yield server


@pytest.fixture
def data_dir(tmp_path: Path, pebble: PebbleServer, knot: KnotServer) -> Path:
    private_file(tmp_path / "upstream-hmac", pebble.eab_keys["kid-1"] + "\n")
    private_file(tmp_path / "tsig.secret", knot.secret)
    return tmp_path


def _upstream(pebble: PebbleServer, knot: KnotServer, **changes: object) -> UpstreamConfig:
    values: dict[str, object] = {
        "name": "pebble",
        "directory_url": pebble.directory_url,
        "ca_bundle": Path(pebble.ca_bundle),
        "eab_kid": "kid-1",
        "eab_hmac_key_file": Path("upstream-hmac"),
        "contact": ("mailto:pki@example.org",),
        "dns01": Rfc2136Config(
            "127.0.0.1", knot.port, KEY_NAME, ALGORITHM, Path("tsig.secret"), None, 0
        ),
    }
    values.update(changes)
    return UpstreamConfig(**values)  # type: ignore[arg-type]


def _txt_values(knot: KnotServer, record: str) -> list[str]:
    answer = knot.query(record, "TXT")
    return [
        b"".join(rdata.strings).decode()
        for rrset in answer.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    ]


async def _issue(
    client: UpstreamClient, names: list[str], publisher: Rfc2136Publisher | None
) -> tuple[str, str]:
    csr, _key = make_csr(names)
    order, pem = await client.issue(names, csr, publisher, patience=60, poll_interval=0.2)
    return order.url, pem


def test_account_registered_with_eab_kept_and_found_again(
    data_dir: Path, pebble: PebbleServer, knot: KnotServer
) -> None:
    upstream = _upstream(pebble, knot)
    first = asyncio.run(ensure_account(data_dir, upstream))
    assert first.how == "registered"
    assert first.url.startswith(pebble.directory_url.removesuffix("/dir"))
    key_file = data_dir / "upstreams" / "pebble" / "account.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = asyncio.run(ensure_account(data_dir, upstream))
    assert (again.how, again.url) == ("kept", first.url)
    # A restore that lost the URL: the key finds its account, no second registration.
    (data_dir / "upstreams" / "pebble" / "account.json").unlink()
    found = asyncio.run(ensure_account(data_dir, upstream))
    assert (found.how, found.url) == ("found", first.url)


def test_an_upstream_requiring_eab_is_not_registered_without_it(
    tmp_path: Path, pebble: PebbleServer, knot: KnotServer
) -> None:
    upstream = _upstream(pebble, knot, eab_kid=None, eab_hmac_key_file=None)
    with pytest.raises(UpstreamError, match="requires External Account Binding"):
        asyncio.run(ensure_account(tmp_path, upstream))


def test_a_wrong_hmac_key_is_refused_by_the_upstream_and_not_echoed(
    tmp_path: Path, pebble: PebbleServer, knot: KnotServer
) -> None:
    wrong = secrets.token_urlsafe(32)
    private_file(tmp_path / "upstream-hmac", wrong)
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(ensure_account(tmp_path, _upstream(pebble, knot)))
    assert "unauthorized" in str(caught.value) or "malformed" in str(caught.value)
    assert wrong not in str(caught.value)
    assert not (tmp_path / "upstreams" / "pebble" / "account.json").exists()


def test_issuance_through_dns01_records_written_over_rfc2136(
    data_dir: Path, pebble: PebbleServer, knot: KnotServer
) -> None:
    upstream = _upstream(pebble, knot)
    asyncio.run(ensure_account(data_dir, upstream))
    base = f"relay-{secrets.token_hex(4)}.{ZONE}"
    names = [base, f"*.{base}"]
    txt_before = knot.query_counts().get("TXT", 0)

    async def run() -> str:
        async with open_client(data_dir, upstream, create_key=False) as client:
            _url, pem = await _issue(client, names, dns_publisher(data_dir, upstream))
            return pem

    pem = asyncio.run(run())
    check_chains_to_pebble(pem.encode(), pebble, names)
    # pebble's VA asked knotd for the records (base and wildcard share one name) ...
    assert knot.query_counts().get("TXT", 0) >= txt_before + 2
    # ... and they are gone again.
    assert _txt_values(knot, f"_acme-challenge.{base}") == []


def test_an_authorization_the_upstream_holds_needs_no_record(
    data_dir: Path, pebble: PebbleServer, knot: KnotServer
) -> None:
    upstream = _upstream(pebble, knot)
    asyncio.run(ensure_account(data_dir, upstream))
    name = f"again-{secrets.token_hex(4)}.{ZONE}"

    async def run() -> None:
        async with open_client(data_dir, upstream, create_key=False) as client:
            await _issue(client, [name], dns_publisher(data_dir, upstream))
            # Reused (PEBBLE_AUTHZREUSE=100): no DNS updates configured, none needed.
            await _issue(client, [name], None)
            with pytest.raises(UpstreamError, match="no dns-01 updates are configured"):
                await _issue(client, [f"fresh-{secrets.token_hex(4)}.{ZONE}"], None)

    asyncio.run(run())


def test_an_update_with_a_wrong_tsig_key_is_refused_and_named(knot: KnotServer) -> None:
    wrong = knot.secret[:-4] + "AAA="
    publisher = Rfc2136Publisher(Rfc2136Target("127.0.0.1", knot.port, KEY_NAME, ALGORITHM, wrong))
    record = f"_acme-challenge.wrong.{ZONE}"
    refused = r"refused the update .* NOTAUTH, TSIG BADSIG"
    with pytest.raises(DnsUpdateError, match=refused) as caught:
        asyncio.run(publisher.publish(record, "x" * 43))
    assert knot.secret not in str(caught.value) and wrong not in str(caught.value)
    assert _txt_values(knot, record) == []


def test_a_name_in_no_zone_of_the_server_is_named(knot: KnotServer) -> None:
    publisher = Rfc2136Publisher(
        Rfc2136Target("127.0.0.1", knot.port, KEY_NAME, ALGORITHM, knot.secret)
    )
    with pytest.raises(DnsUpdateError, match=r"holds no zone for _acme-challenge\.elsewhere"):
        asyncio.run(publisher.publish("_acme-challenge.elsewhere.invalid", "x" * 43))


def test_a_publisher_withdraws_only_its_own_value(knot: KnotServer) -> None:
    publisher = Rfc2136Publisher(
        Rfc2136Target("127.0.0.1", knot.port, KEY_NAME, ALGORITHM, knot.secret)
    )
    record = f"_acme-challenge.shared-{secrets.token_hex(3)}.{ZONE}"

    async def run() -> None:
        await publisher.publish(record, "a" * 43)
        await publisher.publish(record, "b" * 43)
        await publisher.withdraw(record, "a" * 43)

    asyncio.run(run())
    assert _txt_values(knot, record) == ["b" * 43]
