"""Property test of revokeCert's payload parsing (``policy.revocation.revoke``).

The ``certificate`` member is client DER: random bytes, damaged real certificates (a byte
changed in the header, where the lengths and the version are, or anywhere), base64url
defects; ``reason`` any JSON value. Nothing is stored in the database, so every request
is refused, and always with ``AcmeError``: never an exception of cryptography's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import event, given
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from acmefleet.errors import AcmeError
from acmefleet.jose.keys import import_account_key
from acmefleet.policy.revocation import revoke
from acmefleet.store.engine import Database
from tests.support.fuzz import (
    assert_problem,
    b64,
    b64ish,
    fuzz_settings,
    half,
    json_value,
    mutated,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# A damaged serial number may come out zero or negative: cryptography warns when it parses it.
pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
KEY = import_account_key(ECKey.generate_key("P-256").as_dict(private=False))


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz.example.com")])
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("fuzz.example.com")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(Encoding.DER)


CERTIFICATE = _certificate()


def _damaged(position: int, mask: int, header: bool) -> bytes:
    at = position % (16 if header else len(CERTIFICATE))
    return CERTIFICATE[:at] + bytes([CERTIFICATE[at] ^ mask]) + CERTIFICATE[at + 1 :]


certificates = half(
    st.builds(_damaged, st.integers(0, 2**16), st.integers(1, 255), st.booleans()).map(b64),
    st.one_of(
        st.just(b64(CERTIFICATE)),
        st.binary(max_size=400).map(b64),
        st.binary(min_size=1, max_size=len(CERTIFICATE)).map(
            lambda cut: b64(CERTIFICATE[: len(cut)])  # truncated
        ),
        b64ish,
    ),
)
payloads = half(
    mutated(
        st.builds(lambda c: {"certificate": c, "reason": 0}, certificates),
        ["certificate", "reason"],
        st.one_of(json_value, certificates, st.integers(-2, 12)),
    ),
    st.dictionaries(st.sampled_from(["certificate", "reason"]), json_value),
)


@given(payloads)
@fuzz_settings(400)
def test_revoke_refuses_with_acme_errors(database: Database, payload: dict[str, Any]) -> None:
    try:
        with database.write() as conn:
            revoke(
                conn,
                endpoint="private",
                account=None,
                key=KEY,
                payload=payload,
                now=NOW,
                source=None,
            )
    except AcmeError as error:
        assert_problem(error)
        event(f"refused: {error.type.value} {error.http_status}")
        return
    raise AssertionError("a certificate this server never issued was revoked")


@pytest.mark.parametrize("version", [b"\x03", b"\x07", b"\xff"])
def test_a_certificate_of_an_unknown_version_is_malformed(
    database: Database, version: bytes
) -> None:
    """Found by the fuzz above: cryptography's InvalidVersion is no ValueError (a 500)."""
    at = CERTIFICATE.index(b"\xa0\x03\x02\x01\x02") + 4  # [0] EXPLICIT INTEGER 2 (v3)
    der = CERTIFICATE[:at] + version + CERTIFICATE[at + 1 :]
    with pytest.raises(AcmeError, match="not a DER certificate"), database.write() as conn:
        revoke(
            conn,
            endpoint="private",
            account=None,
            key=KEY,
            payload={"certificate": b64(der)},
            now=NOW,
            source=None,
        )
