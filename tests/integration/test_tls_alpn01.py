"""tls-alpn-01 (RFC 8737) end to end: Debian's lego 4.9.1 ``--tls`` obtains a certificate from
acmefleet's public endpoint, then a real TLS server (``tests/support/tls_alpn.py``) answers with
certificates that each break one rule, and every one ends in an ``invalid`` challenge with a
precise problem.

The server validates on ``validation.tls_alpn01_port`` (a free loopback port here, 443 in
production), with the static hosts mapping of the test configuration (every name: 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acmefleet.config import load_config
from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import AcmefleetServer, checked_acmefleet
from tests.support.clients import LegoPaths, challenges_for, check_issued, run_lego
from tests.support.procs import free_ports
from tests.support.tls_alpn import TlsAlpnResponder, validation_certificate

pytestmark = pytest.mark.integration
ERR = "urn:ietf:params:acme:error:"


@pytest.fixture(scope="module")
def acmefleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmefleetServer]:
    [port] = free_ports(1)
    settings = {"tls_alpn01_port": str(port), "timeout_seconds": "5"}
    with checked_acmefleet(tmp_path_factory.mktemp("acmefleet"), settings=settings) as server:
        yield server


def alpn_port(server: AcmefleetServer) -> int:
    """Where the server validates tls-alpn-01: read back from its configuration."""
    return load_config(server.data_dir).validation.tls_alpn01_port


def new_client(server: AcmefleetServer) -> AcmeClient:
    acme = AcmeClient(server.directory("public"), server.ca_bundle)
    response = acme.new_account(server.mint_eab("acme", "public"), contact=["mailto:a@example.com"])
    assert response.status_code == 201, response.text
    return acme


def test_lego_tls_alpn01(acmefleet: AcmefleetServer, tmp_path: Path) -> None:
    names = ["alpn-lego.example.org", "www.alpn-lego.example.org"]
    run = run_lego(
        [
            "--tls",
            "--tls.port",
            f"127.0.0.1:{alpn_port(acmefleet)}",
            *[arg for name in names for arg in ("-d", name)],
            "run",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=tmp_path,
        directory=acmefleet.directory("public"),
        eab=acmefleet.mint_eab("acme", "public"),
    ).check()
    pem = LegoPaths(tmp_path).certificate(names[0]).read_bytes()
    check_issued(acmefleet, pem, names, level="public", context=run.describe())
    valid = [r for r in challenges_for(acmefleet, names) if r["challenge_status"] == "valid"]
    assert sorted(r["type"] for r in valid) == ["tls-alpn-01", "tls-alpn-01"], valid


def tls_alpn_problem(
    server: AcmefleetServer, name: str, *, alpn: bool = True, **breakage: Any
) -> dict[str, Any]:
    """Order ``name``, serve a validation certificate broken as ``breakage`` says, and
    return the problem its tls-alpn-01 challenge ends with."""
    with new_client(server) as acme:
        created = acme.new_order([name])
        assert created.status_code == 201, created.text
        authz_url = created.json()["authorizations"][0]
        authz = acme.get(authz_url).json()
        [challenge] = [c for c in authz["challenges"] if c["type"] == "tls-alpn-01"]
        key_authorization = acme.key.key_authorization(challenge["token"])
        cert, key = validation_certificate(name, key_authorization, **breakage)
        with TlsAlpnResponder(alpn_port(server), cert, key, alpn=alpn) as responder:
            assert acme.answer_challenge(challenge["url"]).status_code == 200
            final = acme.poll(authz_url, ("valid", "invalid"), timeout=30)
        assert responder.handshakes >= (1 if alpn else 0)
    assert final["status"] == "invalid", final
    [failed] = [c for c in final["challenges"] if c["type"] == "tls-alpn-01"]
    problem: dict[str, Any] = failed["error"]
    assert problem["identifier"] == {"type": "dns", "value": name}
    return problem


def test_a_right_certificate_validates(acmefleet: AcmefleetServer) -> None:
    """The responder itself is right: with nothing broken, the challenge is valid."""
    name = "right.example.org"
    with new_client(acmefleet) as acme:
        authz_url = acme.new_order([name]).json()["authorizations"][0]
        authz = acme.get(authz_url).json()
        [challenge] = [c for c in authz["challenges"] if c["type"] == "tls-alpn-01"]
        cert, key = validation_certificate(name, acme.key.key_authorization(challenge["token"]))
        with TlsAlpnResponder(alpn_port(acmefleet), cert, key):
            acme.answer_challenge(challenge["url"])
            final = acme.poll(authz_url, ("valid", "invalid"), timeout=30)
    assert final["status"] == "valid", final


def test_wrong_digest(acmefleet: AcmefleetServer) -> None:
    problem = tls_alpn_problem(acmefleet, "digest.example.org", digest_of="something else")
    assert problem["type"] == ERR + "unauthorized"
    assert "does not hold the expected digest" in problem["detail"]


def test_extension_not_critical(acmefleet: AcmefleetServer) -> None:
    problem = tls_alpn_problem(acmefleet, "critical.example.org", critical=False)
    assert problem["type"] == ERR + "unauthorized"
    assert "not marked critical" in problem["detail"]


def test_no_acme_identifier_extension(acmefleet: AcmefleetServer) -> None:
    problem = tls_alpn_problem(acmefleet, "noext.example.org", extension=False)
    assert problem["type"] == ERR + "unauthorized"
    assert "no acmeIdentifier extension" in problem["detail"]


def test_wrong_san(acmefleet: AcmefleetServer) -> None:
    problem = tls_alpn_problem(acmefleet, "san.example.org", sans=["other.example.org"])
    assert problem["type"] == ERR + "unauthorized"
    assert "subjectAltName" in problem["detail"]


def test_an_extra_san(acmefleet: AcmefleetServer) -> None:
    name = "extra.example.org"
    problem = tls_alpn_problem(acmefleet, name, sans=[name, "more.example.org"])
    assert problem["type"] == ERR + "unauthorized"
    assert "exactly" in problem["detail"]


def test_no_alpn(acmefleet: AcmefleetServer) -> None:
    problem = tls_alpn_problem(acmefleet, "noalpn.example.org", alpn=False)
    assert problem["type"] == ERR + "tls"
    assert "acme-tls/1" in problem["detail"]


def test_nothing_listening(acmefleet: AcmefleetServer) -> None:
    with new_client(acmefleet) as acme:
        authz_url = acme.new_order(["closed.example.org"]).json()["authorizations"][0]
        authz = acme.get(authz_url).json()
        [challenge] = [c for c in authz["challenges"] if c["type"] == "tls-alpn-01"]
        acme.answer_challenge(challenge["url"])
        final = acme.poll(authz_url, ("valid", "invalid"), timeout=30)
    [failed] = [c for c in final["challenges"] if c["type"] == "tls-alpn-01"]
    assert failed["error"]["type"] == ERR + "connection"
