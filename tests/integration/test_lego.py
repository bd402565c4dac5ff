"""Debian's lego (4.9.1) against a running acmefleet: EAB, issuance, renewal, revocation.

Each scenario registers a fresh account with a fresh EAB credential under its own ``--path``
(module-scoped fixtures, one lego run each); renewal and revocation then work on those
certificates. Seven lego runs in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acmefleet.config import CHALLENGE_TYPES
from tests.support.acmefleet_server import AcmefleetServer
from tests.support.clients import (
    ClientRun,
    LegoPaths,
    WebrootServer,
    certificate_row,
    challenges_for,
    check_eab_bound,
    check_issued,
    check_revoked,
    read_chain,
    run_lego,
    san_names,
    serial_hex,
)

pytestmark = pytest.mark.integration

# lego 4.9.1 sends an IP given with -d as a "dns" identifier (the server rightly answers
# rejectedIdentifier "DNS name '10.20.0.5' has a numeric top-level label"), so DNS names only.
PRIVATE_NAMES = ["db1.example.com", "db1.internal.example.com"]
PREVALIDATED_DOMAIN = "prevalidated-lego.example.net"
PREVALIDATED_NAMES = [PREVALIDATED_DOMAIN, "www.prevalidated-lego.example.net"]
HTTP_NAMES = ["http-lego.example.org", "www.http-lego.example.org"]
WEBROOT_NAMES = ["webroot-lego.example.org"]


@dataclass
class Issued:
    """One ``lego run`` and what it left behind."""

    endpoint: str
    names: list[str]
    kid: str
    hmac_key: str
    path: Path
    solver: list[str]
    flags: list[str]  # further global flags (key type), repeated on renewal
    run: ClientRun
    pem: bytes  # NAME.crt (leaf + issuer) as first issued; renewal overwrites the file
    challenges_before: int
    challenges_after: int
    webroot_requests: Sequence[str] = ()

    @property
    def files(self) -> LegoPaths:
        return LegoPaths(self.path)

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.pem)[0]

    def domains(self) -> list[str]:
        return [arg for name in self.names for arg in ("-d", name)]


def http_solver(server: AcmefleetServer) -> list[str]:
    """lego's own http-01 listener on the port the server validates against.

    Names that need no challenge (private endpoint, pre-validated domains) still need a
    solver flag, or lego refuses to start.
    """
    return ["--http", "--http.port", f"127.0.0.1:{server.http01_port}"]


def lego_run(
    server: AcmefleetServer,
    path: Path,
    endpoint: str,
    names: list[str],
    solver: list[str],
    *global_flags: str,
    webroot: WebrootServer | None = None,
) -> Issued:
    kid, hmac_key = server.mint_eab("acme", endpoint)
    before = server.count("challenges")
    domains = [arg for name in names for arg in ("-d", name)]
    run = run_lego(
        [*solver, *global_flags, *domains, "run"],
        ca_bundle=server.ca_bundle,
        base_dir=path,
        directory=server.directory(endpoint),
        eab=(kid, hmac_key),
    ).check()
    return Issued(
        endpoint,
        names,
        kid,
        hmac_key,
        path,
        solver,
        list(global_flags),
        run,
        LegoPaths(path).certificate(names[0]).read_bytes(),
        before,
        server.count("challenges"),
        list(webroot.requests) if webroot else [],
    )


def check_run(server: AcmefleetServer, issued: Issued) -> x509.Certificate:
    """The chain, names, issuer and lint; the EAB bound to the account that holds the cert."""
    leaf = check_issued(
        server, issued.pem, issued.names, level=issued.endpoint, context=issued.run.describe()
    )
    # lego's issuer file is the intermediate the chain was built with.
    assert read_chain(issued.files.issuer(issued.names[0]))[0].subject == leaf.issuer
    row = certificate_row(server, serial_hex(leaf))
    check_eab_bound(server, issued.kid, row["account_id"], issued.endpoint)
    return leaf


# ------------------------------------------------------------------ issuance, one run each


@pytest.fixture(scope="module")
def private_cert(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return lego_run(
        acmefleet,
        tmp_path_factory.mktemp("lego-private"),
        "private",
        PRIVATE_NAMES,
        http_solver(acmefleet),
        "--key-type",
        "ec384",
    )


@pytest.fixture(scope="module")
def prevalidated_cert(
    acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory
) -> Issued:
    # www. under it too: a manual validation of the subtree (scope "subdomains").
    acmefleet.add_domain("acme", PREVALIDATED_DOMAIN, validated=True, scope="subdomains")
    return lego_run(
        acmefleet,
        tmp_path_factory.mktemp("lego-prevalidated"),
        "public",
        PREVALIDATED_NAMES,
        http_solver(acmefleet),
    )


@pytest.fixture(scope="module")
def http_cert(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return lego_run(
        acmefleet,
        tmp_path_factory.mktemp("lego-http"),
        "public",
        HTTP_NAMES,
        http_solver(acmefleet),
        "--key-type",
        "rsa2048",
    )


@pytest.fixture(scope="module")
def webroot_cert(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    path = tmp_path_factory.mktemp("lego-webroot")
    root = path / "htdocs"
    with WebrootServer(root, acmefleet.http01_port) as web:
        return lego_run(
            acmefleet,
            path,
            "public",
            WEBROOT_NAMES,
            ["--http", "--http.webroot", str(root)],
            webroot=web,
        )


# ------------------------------------------------------------------ tests


def test_private_endpoint(acmefleet: AcmefleetServer, private_cert: Issued) -> None:
    leaf = check_run(acmefleet, private_cert)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    assert private_cert.challenges_after == private_cert.challenges_before, "no challenges here"
    authzs = challenges_for(acmefleet, PRIVATE_NAMES)
    assert sorted(r["name"] for r in authzs) == sorted(PRIVATE_NAMES), authzs
    assert all(r["type"] is None and r["authz_status"] == "valid" for r in authzs), authzs


def test_public_prevalidated_domain_needs_no_challenge(
    acmefleet: AcmefleetServer, prevalidated_cert: Issued
) -> None:
    check_run(acmefleet, prevalidated_cert)
    assert prevalidated_cert.challenges_after == prevalidated_cert.challenges_before
    authzs = challenges_for(acmefleet, PREVALIDATED_NAMES)
    assert sorted(r["name"] for r in authzs) == sorted(PREVALIDATED_NAMES), authzs
    assert all(r["type"] is None and r["authz_status"] == "valid" for r in authzs), authzs


def test_public_http01_builtin_server_rsa(acmefleet: AcmefleetServer, http_cert: Issued) -> None:
    leaf = check_run(acmefleet, http_cert)
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    assert http_cert.challenges_after == http_cert.challenges_before + 2 * len(CHALLENGE_TYPES)
    authzs = challenges_for(acmefleet, HTTP_NAMES)
    assert {r["name"] for r in authzs} == set(HTTP_NAMES), authzs
    validated = [r for r in authzs if r["challenge_status"] != "pending"]
    assert sorted(r["name"] for r in validated) == sorted({r["name"] for r in authzs}), authzs
    assert all(
        r["type"] == "http-01"
        and r["challenge_status"] == "valid"
        and r["validated_at"] is not None
        for r in validated
    ), authzs


def test_public_http01_webroot(acmefleet: AcmefleetServer, webroot_cert: Issued) -> None:
    check_run(acmefleet, webroot_cert)
    authzs = challenges_for(acmefleet, WEBROOT_NAMES)
    assert sorted((r["type"], r["challenge_status"]) for r in authzs) == [
        ("dns-01", "pending"),  # offered, left untried: the authorization is valid
        ("http-01", "valid"),
        ("tls-alpn-01", "pending"),
    ], authzs
    fetched = [r for r in webroot_cert.webroot_requests if "/.well-known/acme-challenge/" in r]
    assert fetched and all(" 200 " in r for r in fetched), webroot_cert.webroot_requests


def test_renew(acmefleet: AcmefleetServer, http_cert: Issued) -> None:
    """``renew --days 9999`` always renews: a new serial, the same names and account."""
    accounts, challenges = acmefleet.count("accounts"), acmefleet.count("challenges")
    run = run_lego(
        [
            *http_cert.solver,
            *http_cert.flags,
            *http_cert.domains(),
            "renew",
            "--days",
            "9999",
            "--no-random-sleep",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=http_cert.path,
        directory=acmefleet.directory("public"),
        eab=(http_cert.kid, http_cert.hmac_key),
    ).check()
    renewed_pem = http_cert.files.certificate(HTTP_NAMES[0]).read_bytes()
    renewed = check_issued(
        acmefleet, renewed_pem, HTTP_NAMES, level="public", context=run.describe()
    )
    old = http_cert.leaf
    assert renewed.serial_number != old.serial_number, run.describe()
    assert san_names(renewed) == san_names(old)
    # lego does not remember the key type: without --key-type again it would renew with ec256.
    assert isinstance(renewed.public_key(), rsa.RSAPublicKey)
    assert acmefleet.count("accounts") == accounts, "renewal must reuse the account"
    new_row, old_row = (certificate_row(acmefleet, serial_hex(c)) for c in (renewed, old))
    assert new_row["account_id"] == old_row["account_id"]
    # The authorizations from the first run are still valid: reused, no new challenge.
    assert acmefleet.count("challenges") == challenges


def test_revoke_private_superseded(acmefleet: AcmefleetServer, private_cert: Issued) -> None:
    # lego refuses to start against an EAB-requiring server without --eab/--kid/--hmac, even
    # for revoke/renew with a stored account; the server answers the existing account.
    run_lego(
        [*private_cert.domains(), "revoke", "--reason", "4", "--keep"],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=private_cert.path,
        directory=acmefleet.directory("private"),
        eab=(private_cert.kid, private_cert.hmac_key),
    ).check()
    check_revoked(acmefleet, private_cert.leaf, level="private", reason=4)


def test_revoke_public_cessation(acmefleet: AcmefleetServer, webroot_cert: Issued) -> None:
    run_lego(
        [*webroot_cert.domains(), "revoke", "--reason", "5", "--keep"],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=webroot_cert.path,
        directory=acmefleet.directory("public"),
        eab=(webroot_cert.kid, webroot_cert.hmac_key),
    ).check()
    check_revoked(acmefleet, webroot_cert.leaf, level="public", reason=5)
    assert "Traceback" not in acmefleet.log_text()
