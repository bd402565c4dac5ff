"""OCSP (RFC 6960) and CRL checking of issued certificates, judged by ``openssl`` itself."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from acmefleet.fleet import revocation_probe
from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import AcmefleetServer, checked_acmefleet

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def acmefleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmefleetServer]:
    """A server whose pki_base_url is its own loopback PKI listener: what the certificates
    point at (caIssuers, CRL, OCSP) is fetched from the URLs they carry, unrewritten."""
    with checked_acmefleet(tmp_path_factory.mktemp("ocsp"), pki_host="127.0.0.1") as server:
        yield server


@pytest.fixture(scope="module")
def acme(acmefleet: AcmefleetServer) -> Iterator[AcmeClient]:
    client = AcmeClient(acmefleet.directory("private"), acmefleet.ca_bundle)
    assert client.new_account(acmefleet.mint_eab("acme", "private")).status_code == 201
    yield client
    client.close()


def split_chain(pem: str, where: Path) -> tuple[Path, Path]:
    parts = [p + "-----END CERTIFICATE-----\n" for p in pem.split("-----END CERTIFICATE-----")]
    leaf, issuer = where / "leaf.pem", where / "issuer.pem"
    leaf.write_text(parts[0].strip() + "\n")
    issuer.write_text(parts[1].strip() + "\n")
    return leaf, issuer


def root_of(server: AcmefleetServer, level: str, where: Path) -> Path:
    root = where / f"{level}-root.pem"
    root.write_bytes(httpx.get(f"http://127.0.0.1:{server.pki_port}/pki/{level}/root.pem").content)
    return root


def ocsp_url(leaf: Path) -> str:
    cert = x509.load_pem_x509_certificate(leaf.read_bytes())
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    (url,) = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
    ]
    return str(url)


def openssl_ocsp(server: AcmefleetServer, leaf: Path, issuer: Path, root: Path) -> str:
    """``openssl ocsp`` against the URL the certificate names."""
    local = ocsp_url(leaf)
    assert local == f"http://127.0.0.1:{server.pki_port}/pki/private/ocsp"
    done = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(issuer),
            "-cert",
            str(leaf),
            "-url",
            local,
            "-CAfile",
            str(root),
            "-resp_text",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Response verify OK" in done.stderr + done.stdout
    return done.stdout


def test_openssl_ocsp_good_then_revoked_and_the_crl_agrees(
    acmefleet: AcmefleetServer, acme: AcmeClient, tmp_path: Path
) -> None:
    pem = acme.issue_certificate(["ocsp1.example.com"])
    leaf, issuer = split_chain(pem, tmp_path)
    root = root_of(acmefleet, "private", tmp_path)
    good = openssl_ocsp(acmefleet, leaf, issuer, root)
    assert f"{leaf}: good" in good
    assert "Next Update" in good and "OCSP Nonce" in good
    der = x509.load_pem_x509_certificate(leaf.read_bytes()).public_bytes(Encoding.DER)
    assert acme.revoke(der, reason=4).status_code == 200
    revoked = openssl_ocsp(acmefleet, leaf, issuer, root)
    assert f"{leaf}: revoked" in revoked
    assert "Reason: superseded" in revoked
    crl_der = httpx.get(f"http://127.0.0.1:{acmefleet.pki_port}/pki/private/crl").content
    crl_pem = tmp_path / "crl.pem"
    subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-out", str(crl_pem)], input=crl_der, check=True
    )
    chain = tmp_path / "chain.pem"
    chain.write_text(root.read_text() + issuer.read_text())
    verified = crl_verify(chain, crl_pem, leaf)
    assert verified.returncode != 0
    assert "certificate revoked" in verified.stdout + verified.stderr
    (tmp_path / "other").mkdir()
    other = split_chain(acme.issue_certificate(["ocsp2.example.com"]), tmp_path / "other")[0]
    still = crl_verify(chain, crl_pem, other)
    assert still.returncode == 0, still.stdout + still.stderr


def crl_verify(chain: Path, crl: Path, leaf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", str(chain), "-CRLfile", str(crl), str(leaf)],
        capture_output=True,
        text=True,
        check=False,
    )


def _request(issuer: x509.Certificate, serial: int) -> bytes:
    name_hash = hashes.Hash(hashes.SHA1())
    name_hash.update(issuer.subject.public_bytes())
    key = issuer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key_hash = hashes.Hash(hashes.SHA1())
    key_hash.update(key)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        name_hash.finalize(), key_hash.finalize(), serial, hashes.SHA1()
    )
    return builder.build().public_bytes(Encoding.DER)


def test_get_unknown_unauthorized_and_malformed(
    acmefleet: AcmefleetServer, acme: AcmeClient, tmp_path: Path
) -> None:
    leaf_path, issuer_path = split_chain(acme.issue_certificate(["ocsp3.example.com"]), tmp_path)
    leaf = x509.load_pem_x509_certificate(leaf_path.read_bytes())
    issuer = x509.load_pem_x509_certificate(issuer_path.read_bytes())
    base = f"http://127.0.0.1:{acmefleet.pki_port}/pki"
    before = acmefleet.snapshot()

    def get(level: str, der: bytes) -> ocsp.OCSPResponse:
        answer = httpx.get(f"{base}/{level}/ocsp/{base64.b64encode(der).decode()}")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/ocsp-response"
        return ocsp.load_der_ocsp_response(answer.content)

    by_get = get("private", _request(issuer, leaf.serial_number))
    assert by_get.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert by_get.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert by_get.serial_number == leaf.serial_number
    issuer_key = issuer.public_key()
    assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
    assert by_get.signature_hash_algorithm is not None
    issuer_key.verify(  # signed by the issuing CA itself (no delegated responder)
        by_get.signature, by_get.tbs_response_bytes, ec.ECDSA(by_get.signature_hash_algorithm)
    )
    unknown = get("private", _request(issuer, leaf.serial_number ^ 0xFFFF))
    assert unknown.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    # The public CA was not asked about its own certificates: unauthorized (§2.3).
    elsewhere = get("public", _request(issuer, leaf.serial_number))
    assert elsewhere.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    for junk in (b"\x30\x03\x02\x01\x01", b"not der at all", b"\x00" * 20_000):
        posted = httpx.post(
            f"{base}/private/ocsp",
            content=junk,
            headers={"content-type": "application/ocsp-request"},
        )
        assert posted.status_code in (200, 413), posted.status_code
        if posted.status_code == 200:
            status = ocsp.load_der_ocsp_response(posted.content).response_status
            assert status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    wrong_type = httpx.post(f"{base}/private/ocsp", content=_request(issuer, leaf.serial_number))
    assert ocsp.load_der_ocsp_response(wrong_type.content).response_status == (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    bad_b64 = httpx.get(f"{base}/private/ocsp/AAA")
    assert ocsp.load_der_ocsp_response(bad_b64.content).response_status == (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    assert httpx.put(f"{base}/private/ocsp", content=b"x").status_code == 405
    assert httpx.post(f"{base}/private/ocsp/AAAA").status_code == 405
    assert acmefleet.snapshot() == before


def test_status_probes_ask_as_a_relying_party_and_an_ari_client(
    acmefleet: AcmefleetServer, acme: AcmeClient, tmp_path: Path
) -> None:
    """``acmefleet status``'s probes: OCSP from the certificate's own AIA (issuer fetched
    from caIssuers, the answer's signature checked), the window from renewalInfo."""
    pem = acme.issue_certificate(["ocsp4.example.com"])
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    assert revocation_probe.ocsp_status(der) == "good"
    window = revocation_probe.renewal_window(
        der, acmefleet.directory("private"), acmefleet.ca_bundle
    )
    assert window is not None and window.start > datetime.now(UTC)
    assert revocation_probe.renewal_window(der, acmefleet.directory("public"), None) is None
    assert acme.revoke(der, reason=1).status_code == 200
    assert revocation_probe.ocsp_status(der) == "revoked"
    ended = revocation_probe.renewal_window(
        der, acmefleet.directory("private"), acmefleet.ca_bundle
    )
    assert ended is not None and ended.end <= datetime.now(UTC)


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def _cert_id(algorithm_oid: bytes, serial: bytes) -> bytes:
    algorithm = _der(0x30, _der(0x06, algorithm_oid) + b"\x05\x00")
    return _der(
        0x30,
        algorithm + _der(0x04, b"\x11" * 20) + _der(0x04, b"\x22" * 20) + _der(0x02, serial),
    )


def _hand_built(*cert_ids: bytes) -> bytes:
    """OCSPRequest { TBSRequest { requestList SEQUENCE OF Request { reqCert } } }."""
    requests = b"".join(_der(0x30, c) for c in cert_ids)
    return _der(0x30, _der(0x30, _der(0x30, requests)))


SHA1_OID = bytes.fromhex("2b0e03021a")
MD5_OID = bytes.fromhex("2a864886f70d0205")


@pytest.mark.parametrize(
    "request_der",
    [
        _hand_built(_cert_id(SHA1_OID, b"\x01"), _cert_id(SHA1_OID, b"\x02")),  # two at once
        _hand_built(),  # none
        _hand_built(_cert_id(MD5_OID, b"\x01")),  # a hash cryptography does not know
        _hand_built(_cert_id(SHA1_OID, b"\xff\x01")),  # a negative serial
        _hand_built(_cert_id(SHA1_OID, b"\x00")),  # zero
    ],
    ids=["two-certificates", "none", "md5", "negative-serial", "zero-serial"],
)
def test_requests_it_cannot_answer_are_malformed_not_500(
    acmefleet: AcmefleetServer, request_der: bytes
) -> None:
    base = f"http://127.0.0.1:{acmefleet.pki_port}/pki/private/ocsp"
    for answer in (
        httpx.get(f"{base}/{base64.b64encode(request_der).decode()}"),
        httpx.post(base, content=request_der, headers={"content-type": "application/ocsp-request"}),
    ):
        assert answer.status_code == 200, answer.text
        status = ocsp.load_der_ocsp_response(answer.content).response_status
        assert status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert "Traceback" not in acmefleet.log_text()
