"""dns-01 (RFC 8555 §8.4) against a real authoritative DNS server (Debian's Knot DNS on loopback).

acmefleet's public endpoint asks knotd (``validation.dns_resolvers``); the clients put their
TXT records there with RFC 2136 updates signed by a TSIG key: Debian's lego 4.9.1
(``--dns rfc2136``) and certbot with ``python3-certbot-dns-rfc2136`` each obtain a wildcard
certificate (``*.example.org`` + ``example.org``: a zone that exists only in the test's
knotd; pkilint refuses the reserved ``.test`` in a public certificate). Then the ways a dns-01
validation fails, each ending in an ``invalid`` challenge with its own problem: wrong value,
NXDOMAIN, SERVFAIL, REFUSED, a TXT record too large, a CNAME loop, and a resolver that never
answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acmefleet.validation.dns01 import txt_value
from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import AcmefleetServer, checked_acmefleet
from tests.support.clients import (
    CertbotDirs,
    LegoPaths,
    certbot_register_args,
    challenges_for,
    check_issued,
    run_certbot,
    run_lego,
)
from tests.support.knot import (
    ALGORITHM,
    KEY_NAME,
    OTHER_ZONE,
    ZONE,
    KnotServer,
    SilentResolver,
    certbot_rfc2136_args,
)

pytestmark = pytest.mark.integration
ERR = "urn:ietf:params:acme:error:"
WILDCARD_NAMES = [f"*.{ZONE}", ZONE]
BIG_TXT = " ".join(['"' + "a" * 250 + '"'] * 40)  # 10 kB: over UDP's size, so over TCP
STATIC_RECORDS = [
    '_acme-challenge.wrong TXT "not-the-digest"',
    f"_acme-challenge.big TXT {BIG_TXT}",
    "_acme-challenge.loop CNAME _acme-challenge.loop2",
    "_acme-challenge.loop2 CNAME _acme-challenge.loop",
    # Ten CNAMEs in a row: more than the validator follows (8).
    "_acme-challenge.chain CNAME hop1",
    *[f"hop{i} CNAME hop{i + 1}" for i in range(1, 10)],
    'hop10 TXT "end"',
]


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    with KnotServer(tmp_path_factory.mktemp("knot"), STATIC_RECORDS) as server:
        yield server


@pytest.fixture(scope="module")
def acmefleet(
    knot: KnotServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcmefleetServer]:
    # CAA too: the wildcard certificates pass the check against knotd (no CAA up to org).
    settings = {
        "dns_resolvers": f'["{knot.address}"]',
        "timeout_seconds": "5",
        "check_caa": "true",
    }
    with checked_acmefleet(tmp_path_factory.mktemp("acmefleet"), settings=settings) as server:
        yield server


def new_client(server: AcmefleetServer) -> AcmeClient:
    acme = AcmeClient(server.directory("public"), server.ca_bundle)
    response = acme.new_account(server.mint_eab("acme", "public"), contact=["mailto:a@example.com"])
    assert response.status_code == 201, response.text
    return acme


def dns01_of(acme: AcmeClient, name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(authorization URL, authorization, its dns-01 challenge) of a new order for ``name``."""
    created = acme.new_order([name])
    assert created.status_code == 201, created.text
    authz_url = created.json()["authorizations"][0]
    authz = acme.get(authz_url).json()
    [challenge] = [c for c in authz["challenges"] if c["type"] == "dns-01"]
    return authz_url, authz, challenge


def validate(acme: AcmeClient, authz_url: str, challenge: dict[str, Any]) -> dict[str, Any]:
    """Answer the challenge; the authorization when validation has ended."""
    assert acme.answer_challenge(challenge["url"]).status_code == 200
    return acme.poll(authz_url, ("valid", "invalid"), timeout=30)


def failure(acme: AcmeClient, name: str) -> dict[str, Any]:
    """The problem a dns-01 validation of ``name`` ends with (the records are as set up)."""
    authz_url, _authz, challenge = dns01_of(acme, name)
    final = validate(acme, authz_url, challenge)
    assert final["status"] == "invalid", final
    [failed] = [c for c in final["challenges"] if c["type"] == "dns-01"]
    assert failed["status"] == "invalid", failed
    problem: dict[str, Any] = failed["error"]
    return problem


# ------------------------------------------------------------------ real clients, wildcards


def test_lego_rfc2136_wildcard(
    acmefleet: AcmefleetServer, knot: KnotServer, tmp_path: Path
) -> None:
    secret_file = tmp_path / "tsig-secret"
    secret_file.touch(mode=0o600)
    secret_file.write_text(knot.secret)
    base = tmp_path / "lego"
    run = run_lego(
        [
            "--dns",
            "rfc2136",
            "--dns.resolvers",
            knot.address,
            "--dns.disable-cp",
            *[arg for name in WILDCARD_NAMES for arg in ("-d", name)],
            "run",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=base,
        directory=acmefleet.directory("public"),
        eab=acmefleet.mint_eab("acme", "public"),
        env={
            "RFC2136_NAMESERVER": knot.address,
            "RFC2136_TSIG_KEY": KEY_NAME,
            "RFC2136_TSIG_ALGORITHM": f"{ALGORITHM}.",
            # The secret from a 0600 file, not from the environment.
            "RFC2136_TSIG_SECRET_FILE": str(secret_file),
            "RFC2136_PROPAGATION_TIMEOUT": "30",
            "RFC2136_POLLING_INTERVAL": "1",
            # The wildcard and its base name share one TXT name: lego solves them one after
            # the other, 60 s apart unless told otherwise.
            "RFC2136_SEQUENCE_INTERVAL": "1",
        },
    ).check()
    pem = LegoPaths(base).certificate(f"_.{ZONE}").read_bytes()
    check_issued(acmefleet, pem, WILDCARD_NAMES, level="public", context=run.describe())
    assert knot.secret not in run.stdout + run.stderr


def test_certbot_rfc2136_wildcard(
    acmefleet: AcmefleetServer, knot: KnotServer, tmp_path: Path
) -> None:
    credentials = certbot_rfc2136_args(knot, tmp_path / "rfc2136.ini")
    run = run_certbot(
        [
            "certonly",
            *certbot_register_args(
                acmefleet.directory("public"), acmefleet.mint_eab("acme", "public")
            ),
            *credentials,
            *[arg for name in WILDCARD_NAMES for arg in ("-d", name)],
            "--cert-name",
            "wildcard",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=tmp_path,
    ).check()
    pem = CertbotDirs(tmp_path).fullchain("wildcard").read_bytes()
    check_issued(acmefleet, pem, WILDCARD_NAMES, level="public", context=run.describe())
    assert knot.secret not in run.stdout + run.stderr + run.log


def test_wildcard_authorizations_were_proven_by_dns01_only(acmefleet: AcmefleetServer) -> None:
    # After both clients ran: every authorization of the zone's name was dns-01.
    rows = challenges_for(acmefleet, [ZONE])
    assert rows and {r["type"] for r in rows if r["challenge_status"] == "valid"} == {"dns-01"}


def test_a_wildcard_authorization_offers_dns01_alone(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        created = acme.new_order([f"*.shape.{ZONE}", f"shape.{ZONE}"])
        assert created.status_code == 201, created.text
        authzs = [acme.get(url).json() for url in created.json()["authorizations"]]
    by_wildcard = {bool(a.get("wildcard")): a for a in authzs}
    wildcard, plain = by_wildcard[True], by_wildcard[False]
    # RFC 8555 §7.1.3/§7.1.4: the identifier without "*.", and "wildcard": true.
    assert wildcard["identifier"] == {"type": "dns", "value": f"shape.{ZONE}"}
    assert [c["type"] for c in wildcard["challenges"]] == ["dns-01"]
    assert [c["type"] for c in plain["challenges"]] == ["http-01", "dns-01", "tls-alpn-01"]
    assert len({c["token"] for c in plain["challenges"]}) == 3


def test_cname_to_another_zone_is_followed(acmefleet: AcmefleetServer, knot: KnotServer) -> None:
    target = f"delegated.{OTHER_ZONE}."
    with new_client(acmefleet) as acme:
        authz_url, _authz, challenge = dns01_of(acme, f"cname.{ZONE}")
        value = txt_value(acme.key.key_authorization(challenge["token"]))
        knot.update(ZONE, replace={f"_acme-challenge.cname.{ZONE}.": ("CNAME", [target])})
        # Next to the right value, one that is not: several TXT records are allowed.
        knot.update(OTHER_ZONE, replace={target: ("TXT", [f'"{value}"', '"unrelated"'])})
        final = validate(acme, authz_url, challenge)
    assert final["status"] == "valid", final


# ------------------------------------------------------------------ failures, each precise


def test_wrong_txt_value_is_unauthorized(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        problem = failure(acme, f"wrong.{ZONE}")
    assert problem["type"] == ERR + "unauthorized"
    assert f"_acme-challenge.wrong.{ZONE}" in problem["detail"]
    assert problem["identifier"] == {"type": "dns", "value": f"wrong.{ZONE}"}


def test_nxdomain_is_a_dns_problem(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        problem = failure(acme, f"nothing-here.{ZONE}")
    assert problem["type"] == ERR + "dns"
    assert "NXDOMAIN" in problem["detail"]


def test_servfail_is_a_dns_problem(acmefleet: AcmefleetServer) -> None:
    # broken.test is configured in knotd but its zone file does not load: SERVFAIL.
    with new_client(acmefleet) as acme:
        problem = failure(acme, "www.broken.test")
    assert problem["type"] == ERR + "dns"
    assert "SERVFAIL" in problem["detail"], problem


def test_a_zone_the_server_does_not_serve_is_a_dns_problem(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        problem = failure(acme, "www.elsewhere.test")
    assert problem["type"] == ERR + "dns"
    assert "REFUSED" in problem["detail"], problem


def test_a_txt_record_too_large_is_not_a_value(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        problem = failure(acme, f"big.{ZONE}")
    assert problem["type"] == ERR + "unauthorized"
    assert "longer than 255 bytes" in problem["detail"], problem


def test_a_cname_loop_ends(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        problem = failure(acme, f"loop.{ZONE}")
    assert problem["type"] == ERR + "dns"


def test_a_long_cname_chain_ends(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        problem = failure(acme, f"chain.{ZONE}")
    assert problem["type"] == ERR + "dns"
    assert "more than 8 CNAMEs" in problem["detail"], problem


def test_a_resolver_that_never_answers_times_out(tmp_path: Path) -> None:
    silent = SilentResolver()
    settings = {"dns_resolvers": f'["{silent.address}"]', "timeout_seconds": "2"}
    try:
        with checked_acmefleet(tmp_path, settings=settings) as server, new_client(server) as acme:
            started = time.monotonic()
            problem = failure(acme, f"silent.{ZONE}")
            took = time.monotonic() - started
    finally:
        silent.close()
    assert problem["type"] == ERR + "dns"
    assert "within 2 s" in problem["detail"], problem
    assert took < 10, took


def test_an_endpoint_without_dns01_refuses_wildcards(tmp_path: Path) -> None:
    """``challenges`` in the endpoint's configuration decides what is offered."""
    with (
        checked_acmefleet(tmp_path, settings={"challenges": '["http-01"]'}) as server,
        new_client(server) as acme,
    ):
        plain = acme.new_order([f"www.{ZONE}"])
        authz = acme.get(plain.json()["authorizations"][0]).json()
        assert [c["type"] for c in authz["challenges"]] == ["http-01"]
        refused = acme.new_order([f"*.{ZONE}"])
    assert refused.json()["type"] == ERR + "rejectedIdentifier", refused.text
    assert "needs dns-01" in refused.json()["detail"]
