"""ACME Renewal Information (RFC 9773) against a running server.

The certID of each certificate is built here from ``openssl x509``'s own reading of the
certificate (its serial and authority key identifier), not by acmefleet's code: what a
client computes from the certificate it holds must name it on the server.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acmefleet.clock import SystemClock
from acmefleet.console import tokens
from tests.support.acme_client import AcmeClient, make_csr, problem_type
from tests.support.acmefleet_server import ACMEFLEET, AcmefleetServer

pytestmark = pytest.mark.integration
ERR = "urn:ietf:params:acme:error:"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl_cert_id(pem: str, tmp_path: Path) -> str:
    """RFC 9773 §4.1 from openssl's text: keyIdentifier "." DER serial content octets."""
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(
        pem.split("-----END CERTIFICATE-----", maxsplit=1)[0] + "-----END CERTIFICATE-----\n"
    )
    out = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(leaf),
            "-noout",
            "-serial",
            "-ext",
            "authorityKeyIdentifier",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    serial_hex = out.split("serial=", 1)[1].split()[0]
    key_id_hex = out.split("Authority Key Identifier:", 1)[1].split()[0].replace("keyid:", "")
    serial = int(serial_hex, 16)
    octets = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # DER: a sign octet if needed
    return f"{b64url(bytes.fromhex(key_id_hex.replace(':', '')))}.{b64url(octets)}"


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def server(acmefleet: AcmefleetServer) -> AcmefleetServer:
    acmefleet.org("other", "example.net")
    return acmefleet


@pytest.fixture
def acme(server: AcmefleetServer) -> Iterator[AcmeClient]:
    client = AcmeClient(server.directory("private"), server.ca_bundle)
    created = client.new_account(server.mint_eab("acme", "private"))
    assert created.status_code == 201, created.text
    yield client
    client.close()


def renewal_info(server: AcmefleetServer, endpoint: str, cert_id: str) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=server.ca_bundle)) as http:
        return http.get(f"{server.base_url}/acme/{endpoint}/renewal-info/{cert_id}")


def admin(server: AcmefleetServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACMEFLEET, "admin", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_directory_and_default_window(
    server: AcmefleetServer, acme: AcmeClient, tmp_path: Path
) -> None:
    assert acme.directory["renewalInfo"] == f"{server.base_url}/acme/private/renewal-info"
    pem = acme.issue_certificate(["ari1.example.com"])
    leaf = x509.load_pem_x509_certificate(pem.encode())
    cert_id = openssl_cert_id(pem, tmp_path)
    answer = renewal_info(server, "private", cert_id)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Retry-After"] == str(6 * 3600)
    window = answer.json()["suggestedWindow"]
    start, end = parse_time(window["start"]), parse_time(window["end"])
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    validity = not_after - not_before + timedelta(seconds=1)
    # Somewhere in [60 %, 70 %) of the validity, 5 % long, so always over by 75 %.
    assert not_before + validity * 0.6 - timedelta(seconds=1) <= start
    assert start < not_before + validity * 0.7
    assert abs((end - start) - validity * 0.05) <= timedelta(seconds=1)
    assert end <= not_before + validity * 0.75
    # The same certificate gets the same window, ask as often as one likes.
    assert renewal_info(server, "private", cert_id).json() == answer.json()


def test_refusals_are_precise(server: AcmefleetServer, acme: AcmeClient, tmp_path: Path) -> None:
    cert_id = openssl_cert_id(acme.issue_certificate(["ari2.example.com"]), tmp_path)
    key_id, serial = cert_id.split(".")
    before = server.snapshot()
    # Another endpoint did not issue it; an unknown serial or key identifier names nothing.
    assert renewal_info(server, "public", cert_id).status_code == 404
    assert (
        renewal_info(server, "private", key_id + "." + b64url(b"\x01\x02\x03")).status_code == 404
    )
    assert renewal_info(server, "private", f"{b64url(b'x' * 20)}.{serial}").status_code == 404
    malformed = {
        f"{key_id}.{serial}=": 404,  # padding is outside the path's alphabet
        f"{key_id}.{serial}.{serial}": 404,
        key_id + "." + b64url(b"\x80\x01"): 400,  # a negative serial
        key_id + "." + b64url(b"\x00\x01"): 400,  # not DER's shortest form
        key_id + "." + b64url(b"\x00"): 400,  # zero
        key_id + "." + b64url(b"\x01" * 22): 400,  # longer than RFC 5280 allows
        f"{key_id}.A": 400,  # not base64url at all
        # Stray bits: "AQI" is 0x01 0x02 with two zero bits left over, "AQJ" sets one of
        # them, so it is not canonical. (Cutting a character off the real serial left zero
        # bits, hence a canonical shorter serial, one time in 16.)
        f"{key_id}.AQJ": 400,
        f"{key_id}.{serial}%0A": 404,
    }
    for text, status in malformed.items():
        answer = renewal_info(server, "private", text)
        assert answer.status_code == status, (text, answer.text)
        assert problem_type(answer) == ERR + "malformed", text
    with httpx.Client(verify=ssl.create_default_context(cafile=server.ca_bundle)) as http:
        posted = http.post(f"{server.base_url}/acme/private/renewal-info/{cert_id}", content=b"{}")
    assert posted.status_code == 405
    assert server.snapshot() == before


def test_replacement_links_and_refuses_a_second(
    server: AcmefleetServer, acme: AcmeClient, tmp_path: Path
) -> None:
    old = acme.issue_certificate(["ari3.example.com", "ari3b.example.com"])
    cert_id = openssl_cert_id(old, tmp_path)
    first = acme.new_order(["ari3.example.com"], extra={"replaces": cert_id})
    assert first.status_code == 201, first.text
    assert first.json()["replaces"] == cert_id
    second = acme.new_order(["ari3.example.com"], extra={"replaces": cert_id})
    assert second.status_code == 201, second.text  # neither is finalized yet
    csr, _ = make_csr(["ari3.example.com"])
    done = acme.finalize(first.json(), csr)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "valid" and done.json()["replaces"] == cert_id
    before = server.snapshot()
    late = acme.finalize(second.json(), make_csr(["ari3.example.com"])[0])
    assert late.status_code == 409, late.text
    assert problem_type(late) == ERR + "alreadyReplaced"
    third = acme.new_order(["ari3.example.com"], extra={"replaces": cert_id})
    assert third.status_code == 409 and problem_type(third) == ERR + "alreadyReplaced"
    assert server.snapshot() == before
    # The inventory says the old certificate was replaced.
    listed = admin(server, "cert", "list", "--name", "ari3b.example.com", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["replaced"] is True


def test_replaces_refused_for_what_is_not_yours(
    server: AcmefleetServer, acme: AcmeClient, tmp_path: Path
) -> None:
    cert_id = openssl_cert_id(acme.issue_certificate(["ari4.example.com"]), tmp_path)
    other = AcmeClient(server.directory("private"), server.ca_bundle)
    assert other.new_account(server.mint_eab("other", "private")).status_code == 201
    before = server.snapshot()
    with other:
        foreign = other.new_order(["ari4.example.net"], extra={"replaces": cert_id})
    assert foreign.status_code == 400 and "issued to you" in foreign.json()["detail"]
    unrelated = acme.new_order(["ari5.example.com"], extra={"replaces": cert_id})
    assert unrelated.status_code == 400 and "no identifier" in unrelated.json()["detail"]
    for bad in (17, "", "not-a-cert-id", cert_id + "x" * 200):
        refused = acme.new_order(["ari4.example.com"], extra={"replaces": bad})
        assert refused.status_code == 400, (bad, refused.text)
        assert problem_type(refused) == ERR + "malformed"
    assert server.snapshot() == before


def test_operator_pulls_windows_forward(
    server: AcmefleetServer, acme: AcmeClient, tmp_path: Path
) -> None:
    pem = acme.issue_certificate(["ari6.example.com"])
    serial = format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")
    untouched = openssl_cert_id(acme.issue_certificate(["ari7.example.com"]), tmp_path)
    untouched_window = renewal_info(server, "private", untouched).json()
    cert_id = openssl_cert_id(pem, tmp_path)
    refused = admin(server, "cert", "pull-forward", "--reason", "everything")
    assert refused.returncode != 0 and "name the certificates" in refused.stderr
    colons = ":".join(serial.upper()[i : i + 2] for i in range(0, len(serial), 2))
    asked = datetime.now(UTC).replace(microsecond=0)
    done = admin(
        server,
        "cert",
        "pull-forward",
        "--serial",
        colons,
        "--reason",
        "CA incident 2026-12 (test)",
        "--within",
        "2",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["count"] == 1 and result["certificates"][0]["serial"] == serial
    window = renewal_info(server, "private", cert_id).json()["suggestedWindow"]
    start, end = parse_time(window["start"]), parse_time(window["end"])
    assert asked - timedelta(seconds=5) <= start <= asked + timedelta(seconds=30)
    assert end - start == timedelta(hours=2)
    assert "incident" not in json.dumps(window)  # the reason stays in the console
    assert renewal_info(server, "private", untouched).json() == untouched_window
    shown = json.loads(admin(server, "cert", "list", "--name", "ari6", "--json").stdout)
    assert shown[0]["renewal_window"]["reason"] == "CA incident 2026-12 (test)"
    events = json.loads(admin(server, "audit", "--json").stdout)
    pulled = [e for e in events if e["action"] == "certificate.renewal-pulled-forward"]
    assert pulled and pulled[0]["details"]["certificates"] == 1
    assert pulled[0]["details"]["reason"] == "CA incident 2026-12 (test)"
    unknown = admin(server, "cert", "pull-forward", "--serial", "abcdef", "--reason", "x")
    assert unknown.returncode != 0 and "no such certificate" in unknown.stderr


def test_revoked_certificate_is_due_at_once(
    server: AcmefleetServer, acme: AcmeClient, tmp_path: Path
) -> None:
    pem = acme.issue_certificate(["ari8.example.com"])
    cert_id = openssl_cert_id(pem, tmp_path)
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    assert acme.revoke(der, reason=4).status_code == 200
    window = renewal_info(server, "private", cert_id).json()["suggestedWindow"]
    assert parse_time(window["end"]) <= datetime.now(UTC)


def test_pull_forward_over_the_api_refuses_hostile_bodies(
    server: AcmefleetServer, acme: AcmeClient
) -> None:
    pem = acme.issue_certificate(["ari9.example.com"])
    serial = format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")
    with server.db() as database, database.write() as conn:
        admin_token, _ = tokens.create(
            conn, name="ari", role="admin", actor="t", now=SystemClock().now()
        )
        auditor_token, _ = tokens.create(
            conn, name="ari-auditor", role="auditor", actor="t", now=SystemClock().now()
        )
    url = f"{server.base_url}/admin/api/v1/certificates/renewal-windows"
    context = ssl.create_default_context(cafile=server.ca_bundle)
    before = server.snapshot()
    with httpx.Client(verify=context, headers={"Authorization": f"Bearer {admin_token}"}) as api:
        hostile: list[object] = [
            {"reason": "no selection"},
            {"serials": [serial], "reason": ""},
            {"serials": [serial], "reason": "two\nlines"},
            {"serials": [serial], "reason": "x", "within_hours": 0},
            {"serials": [serial], "reason": "x", "within_hours": 24 * 91},
            {"serials": [serial], "reason": "x", "surprise": True},
            {"serials": ["zz"], "reason": "x"},
            {"serials": ["ab" * 40], "reason": "x"},
            {"serials": [serial] * 100_001, "reason": "x"},
            [serial],
        ]
        for body in hostile:
            refused = api.post(url, json=body)
            assert 400 <= refused.status_code < 500, (str(body)[:80], refused.text)
        as_auditor = api.post(
            url,
            json={"serials": [serial], "reason": "x"},
            headers={"Authorization": f"Bearer {auditor_token}"},
        )
        assert as_auditor.status_code == 403
        assert server.snapshot() == before
        done = api.post(
            url, json={"name": "ari9.example.com", "reason": "rekey", "within_hours": 1}
        )
        assert done.status_code == 200, done.text
        assert done.json()["count"] == 1 and done.json()["certificates"][0]["serial"] == serial
        shown = api.get(f"{server.base_url}/admin/api/v1/certificates", params={"name": "ari9"})
        assert shown.json()[0]["renewal_window"]["reason"] == "rekey"
