"""Debian's certbot (2.1) against a running acmefleet: EAB, issuance, renewal, revocation.

Each scenario registers a fresh account with a fresh EAB credential in its own certbot
config dir (module-scoped fixtures, one certbot run each); renewal and revocation then work
on those certificates. Seven certbot runs in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from acmefleet.config import CHALLENGE_TYPES
from tests.support.acmefleet_server import AcmefleetServer
from tests.support.clients import (
    CertbotDirs,
    ClientRun,
    WebrootServer,
    certbot_register_args,
    certificate_row,
    challenges_for,
    check_eab_bound,
    check_issued,
    check_revoked,
    read_chain,
    run_certbot,
    san_names,
    serial_hex,
)

pytestmark = pytest.mark.integration


PRIVATE_NAMES = ["host1.example.com", "api.internal.example.com"]
PREVALIDATED_DOMAIN = "prevalidated-certbot.example.net"
PREVALIDATED_NAMES = [PREVALIDATED_DOMAIN, "www.prevalidated-certbot.example.net"]
STANDALONE_NAMES = ["standalone-certbot.example.org", "www.standalone-certbot.example.org"]
WEBROOT_NAMES = ["webroot-certbot.example.org"]


@dataclass
class Issued:
    """One ``certbot certonly`` run and what it left behind."""

    endpoint: str
    names: list[str]
    kid: str
    dirs: CertbotDirs
    run: ClientRun
    pem: bytes  # fullchain.pem as first issued (renewal re-points the live symlinks)
    challenges_before: int
    challenges_after: int
    webroot_requests: Sequence[str] = ()

    @property
    def cert_name(self) -> str:
        return self.names[0]

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.pem)[0]

    @property
    def cert_path(self) -> Path:
        return self.dirs.live(self.cert_name) / "cert.pem"


def standalone_args(server: AcmefleetServer) -> list[str]:
    return [
        "--standalone",
        "--http-01-port",
        str(server.http01_port),
        "--http-01-address",
        "127.0.0.1",
    ]


def certonly(
    server: AcmefleetServer,
    base: Path,
    endpoint: str,
    names: list[str],
    authenticator: list[str],
    *extra: str,
    webroot: WebrootServer | None = None,
) -> Issued:
    kid, hmac_key = server.mint_eab("acme", endpoint)
    dirs = CertbotDirs(base)
    before = server.count("challenges")
    domains = [arg for name in names for arg in ("-d", name)]
    run = run_certbot(
        [
            "certonly",
            *certbot_register_args(server.directory(endpoint), (kid, hmac_key)),
            *authenticator,
            *domains,
            "--cert-name",
            names[0],
            *extra,
        ],
        ca_bundle=server.ca_bundle,
        base_dir=base,
    ).check()
    return Issued(
        endpoint,
        names,
        kid,
        dirs,
        run,
        dirs.fullchain(names[0]).read_bytes(),
        before,
        server.count("challenges"),
        list(webroot.requests) if webroot else [],
    )


def check_certonly(server: AcmefleetServer, issued: Issued) -> x509.Certificate:
    """The chain, names, issuer and lint; the EAB bound to the account that holds the cert."""
    leaf = check_issued(
        server, issued.pem, issued.names, level=issued.endpoint, context=issued.run.describe()
    )
    # certbot's own files agree with the chain it was given.
    assert read_chain(issued.dirs.live(issued.cert_name) / "chain.pem")[0].subject == leaf.issuer
    row = certificate_row(server, serial_hex(leaf))
    check_eab_bound(server, issued.kid, row["account_id"], issued.endpoint)
    return leaf


# ------------------------------------------------------------------ issuance, one run each


@pytest.fixture(scope="module")
def private_cert(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    # No challenge is ever offered here; certbot still wants an authenticator.
    return certonly(
        acmefleet,
        tmp_path_factory.mktemp("certbot-private"),
        "private",
        PRIVATE_NAMES,
        standalone_args(acmefleet),
    )


@pytest.fixture(scope="module")
def prevalidated_cert(
    acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory
) -> Issued:
    # www. under it too: a manual validation of the subtree (scope "subdomains").
    acmefleet.add_domain("acme", PREVALIDATED_DOMAIN, validated=True, scope="subdomains")
    return certonly(
        acmefleet,
        tmp_path_factory.mktemp("certbot-prevalidated"),
        "public",
        PREVALIDATED_NAMES,
        standalone_args(acmefleet),
    )


@pytest.fixture(scope="module")
def standalone_cert(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return certonly(
        acmefleet,
        tmp_path_factory.mktemp("certbot-standalone"),
        "public",
        STANDALONE_NAMES,
        standalone_args(acmefleet),
    )


@pytest.fixture(scope="module")
def webroot_cert(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    base = tmp_path_factory.mktemp("certbot-webroot")
    root = base / "htdocs"
    with WebrootServer(root, acmefleet.http01_port) as web:
        return certonly(
            acmefleet,
            base,
            "public",
            WEBROOT_NAMES,
            ["--webroot", "-w", str(root)],
            "--key-type",
            "rsa",
            "--rsa-key-size",
            "2048",
            webroot=web,
        )


# ------------------------------------------------------------------ tests


def test_private_endpoint(acmefleet: AcmefleetServer, private_cert: Issued) -> None:
    leaf = check_certonly(acmefleet, private_cert)
    assert "Private" in leaf.issuer.rfc4514_string()
    assert private_cert.challenges_after == private_cert.challenges_before, "no challenges here"
    assert all(
        r["type"] is None and r["authz_status"] == "valid"
        for r in challenges_for(acmefleet, PRIVATE_NAMES)
    )


def test_public_prevalidated_domain_needs_no_challenge(
    acmefleet: AcmefleetServer, prevalidated_cert: Issued
) -> None:
    leaf = check_certonly(acmefleet, prevalidated_cert)
    assert "Public" in leaf.issuer.rfc4514_string()
    assert prevalidated_cert.challenges_after == prevalidated_cert.challenges_before
    authzs = challenges_for(acmefleet, PREVALIDATED_NAMES)
    assert sorted(r["name"] for r in authzs) == sorted(PREVALIDATED_NAMES), authzs
    assert all(r["type"] is None and r["authz_status"] == "valid" for r in authzs), authzs


def test_public_http01_standalone(acmefleet: AcmefleetServer, standalone_cert: Issued) -> None:
    check_certonly(acmefleet, standalone_cert)
    assert standalone_cert.challenges_after == standalone_cert.challenges_before + 2 * len(
        CHALLENGE_TYPES
    )
    authzs = challenges_for(acmefleet, STANDALONE_NAMES)
    assert {r["name"] for r in authzs} == set(STANDALONE_NAMES), authzs
    validated = [r for r in authzs if r["challenge_status"] != "pending"]
    assert sorted(r["name"] for r in validated) == sorted({r["name"] for r in authzs}), authzs
    assert all(
        r["type"] == "http-01"
        and r["challenge_status"] == "valid"
        and r["validated_at"] is not None
        for r in validated
    ), authzs


def test_public_http01_webroot_rsa(acmefleet: AcmefleetServer, webroot_cert: Issued) -> None:
    leaf = check_certonly(acmefleet, webroot_cert)
    assert leaf.public_key().key_size == 2048  # type: ignore[union-attr]
    authzs = challenges_for(acmefleet, WEBROOT_NAMES)
    assert sorted((r["type"], r["challenge_status"]) for r in authzs) == [
        ("dns-01", "pending"),  # offered, left untried: the authorization is valid
        ("http-01", "valid"),
        ("tls-alpn-01", "pending"),
    ], authzs
    # The validator fetched the token from our web server, and got it.
    fetched = [r for r in webroot_cert.webroot_requests if "/.well-known/acme-challenge/" in r]
    assert fetched and all(" 200 " in r for r in fetched), webroot_cert.webroot_requests


def test_renew_force_renewal(acmefleet: AcmefleetServer, standalone_cert: Issued) -> None:
    """Stored renewal config (server, account, standalone on the test port): a new serial."""
    accounts, challenges = acmefleet.count("accounts"), acmefleet.count("challenges")
    run = run_certbot(
        ["renew", "--force-renewal", "--no-random-sleep-on-renew"],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=standalone_cert.dirs.base,
    ).check()
    renewed_pem = standalone_cert.dirs.fullchain(standalone_cert.cert_name).read_bytes()
    renewed = check_issued(
        acmefleet, renewed_pem, STANDALONE_NAMES, level="public", context=run.describe()
    )
    old = standalone_cert.leaf
    assert renewed.serial_number != old.serial_number, run.describe()
    assert san_names(renewed) == san_names(old)
    assert acmefleet.count("accounts") == accounts, "renewal must reuse the account"
    new_row, old_row = (certificate_row(acmefleet, serial_hex(c)) for c in (renewed, old))
    assert new_row["account_id"] == old_row["account_id"]
    # The authorizations from the first run are still valid: reused, no new challenge.
    assert acmefleet.count("challenges") == challenges


def test_revoke_private_keycompromise(acmefleet: AcmefleetServer, private_cert: Issued) -> None:
    run_certbot(
        [
            "revoke",
            "--server",
            acmefleet.directory("private"),
            "--cert-path",
            str(private_cert.cert_path),
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=private_cert.dirs.base,
    ).check()
    check_revoked(acmefleet, private_cert.leaf, level="private", reason=1)


def test_revoke_public_unspecified(acmefleet: AcmefleetServer, webroot_cert: Issued) -> None:
    run_certbot(
        [
            "revoke",
            "--server",
            acmefleet.directory("public"),
            "--cert-path",
            str(webroot_cert.cert_path),
            "--no-delete-after-revoke",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=webroot_cert.dirs.base,
    ).check()
    check_revoked(acmefleet, webroot_cert.leaf, level="public", reason=0)
    assert "Traceback" not in acmefleet.log_text()
