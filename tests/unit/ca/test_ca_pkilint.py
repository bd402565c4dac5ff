"""Certificates and CRLs from the embedded CA must lint without ERROR/FATAL findings."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acmefleet.ca.crl import RevokedEntry, build_crl
from acmefleet.ca.hierarchy import Authority
from acmefleet.ca.issuer import EmbeddedIssuer, IssuedCertificate, IssueRequest
from acmefleet.ca.profiles import DEFAULT_PROFILES
from acmefleet.ca.tls import issue_server_tls
from acmefleet.clock import FixedClock
from tests.support.pkilint import pkilint_tool

BLOCKING = {"ERROR", "FATAL"}
DV = DEFAULT_PROFILES["public-dv"]
PRIVATE = DEFAULT_PROFILES["private-server"]


def lint(tool: str, args: list[str], document: Path) -> list[tuple[str, str]]:
    """Run a pkilint CLI; return (severity, code) for every finding of NOTICE or above."""
    result = subprocess.run(
        [pkilint_tool(tool), "lint", *args, "-s", "NOTICE", "-f", "JSON", str(document)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout, result.stderr
    return [
        (finding["severity"], finding["code"])
        for entry in json.loads(result.stdout)["results"]
        for finding in entry["finding_descriptions"]
    ]


def _assert_clean(findings: list[tuple[str, str]]) -> None:
    assert [f for f in findings if f[0] in BLOCKING] == [], findings


def _leaf_pem(issued: IssuedCertificate, path: Path) -> Path:
    leaf = x509.load_der_x509_certificate(issued.leaf_der)
    path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return path


def _dv_lint(issued: IssuedCertificate, tmp_path: Path) -> list[tuple[str, str]]:
    pem = _leaf_pem(issued, tmp_path / "leaf.pem")
    return lint("lint_cabf_serverauth_cert", ["-t", "DV-FINAL-CERTIFICATE"], pem)


def test_dv_p256(
    public_issuer: EmbeddedIssuer, p256_key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    request = IssueRequest(p256_key.public_key(), ("www.example.com", "example.com"), (), DV)
    findings = _dv_lint(public_issuer.issue(request), tmp_path)
    assert findings == []


def test_dv_rsa2048(
    public_issuer: EmbeddedIssuer, rsa2048_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    request = IssueRequest(rsa2048_key.public_key(), ("www.example.com", "example.com"), (), DV)
    findings = _dv_lint(public_issuer.issue(request), tmp_path)
    _assert_clean(findings)
    # The BRs discourage keyEncipherment next to digitalSignature; it is kept for TLS 1.2 RSA
    # key exchange, which is the only finding.
    assert findings == [
        ("WARNING", "cabf.serverauth.subscriber_rsa_digitalsignature_and_keyencipherment_present")
    ]


def test_dv_longest_validity_wildcard_and_ip(
    public_issuer: EmbeddedIssuer,
    p384_key: ec.EllipticCurvePrivateKey,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    start = clock.now()
    request = IssueRequest(
        p384_key.public_key(),
        ("*.example.com", "example.com"),
        ("8.8.8.8",),
        DV,
        not_before=start,
        not_after=start + DV.max_validity - timedelta(seconds=1),
    )
    assert _dv_lint(public_issuer.issue(request), tmp_path) == []


@pytest.mark.parametrize("key_fixture", ["p256_key", "rsa2048_key"])
def test_private_server(
    key_fixture: str,
    private_issuer: EmbeddedIssuer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    key = request.getfixturevalue(key_fixture)
    names = ("db.internal.example", "db.example.org")
    issued = private_issuer.issue(IssueRequest(key.public_key(), names, ("10.1.2.3",), PRIVATE))
    _assert_clean(lint("lint_pkix_cert", [], _leaf_pem(issued, tmp_path / "leaf.pem")))


def test_server_tls(private_ca: Authority, clock: FixedClock, tmp_path: Path) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issue_server_tls(private_ca, ["acme.example.net", "192.0.2.1"], cert, key, clock=clock)
    leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    _assert_clean(lint("lint_pkix_cert", [], tmp_path / "leaf.pem"))


@pytest.mark.parametrize("which", ["root", "issuer"])
def test_ca_certificates_pkix(public_ca: Authority, which: str, tmp_path: Path) -> None:
    cert: x509.Certificate = getattr(public_ca, which)
    (tmp_path / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _assert_clean(lint("lint_pkix_cert", [], tmp_path / "ca.pem"))


@pytest.mark.parametrize("profile", ["PKIX", "BR"])
def test_crl(public_ca: Authority, clock: FixedClock, tmp_path: Path, profile: str) -> None:
    now = clock.now()
    entries = [RevokedEntry("1234abcd", now, 1), RevokedEntry("0ff1ce", now, 0)]
    der = build_crl(
        public_ca, entries, this_update=now, next_update=now + timedelta(days=7), crl_number=7
    )
    (tmp_path / "crl.der").write_bytes(der)
    assert lint("lint_crl", ["-t", "CRL", "-p", profile], tmp_path / "crl.der") == []
