from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from acmefleet.ca.crl import REVOCATION_REASONS_ACCEPTED, RevokedEntry, build_crl
from acmefleet.ca.errors import CaError
from acmefleet.ca.hierarchy import Authority
from acmefleet.clock import FixedClock


def test_reasons_accepted() -> None:
    assert frozenset({0, 1, 3, 4, 5, 9}) == REVOCATION_REASONS_ACCEPTED


def test_crl(public_ca: Authority, private_ca: Authority, clock: FixedClock) -> None:
    now = clock.now()
    entries = [
        RevokedEntry("1f" * 20, now - timedelta(hours=1), 0),
        RevokedEntry("7a" + "00" * 19, now - timedelta(minutes=5), 1),
        RevokedEntry("abc", now, 4),
    ]
    der = build_crl(
        public_ca, entries, this_update=now, next_update=now + timedelta(days=1), crl_number=42
    )
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(public_ca.issuer_key.public_key())
    assert not crl.is_signature_valid(private_ca.issuer_key.public_key())
    assert crl.issuer == public_ca.issuer.subject
    assert crl.last_update_utc == now
    assert crl.next_update_utc == now + timedelta(days=1)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = public_ca.issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert len(crl) == 3

    unspecified = crl.get_revoked_certificate_by_serial_number(int("1f" * 20, 16))
    assert unspecified is not None
    assert unspecified.revocation_date_utc == now - timedelta(hours=1)
    assert len(unspecified.extensions) == 0
    compromised = crl.get_revoked_certificate_by_serial_number(int("7a" + "00" * 19, 16))
    assert compromised is not None
    reason = compromised.extensions.get_extension_for_class(x509.CRLReason)
    assert reason.value.reason == x509.ReasonFlags.key_compromise
    assert not reason.critical
    superseded = crl.get_revoked_certificate_by_serial_number(0xABC)
    assert superseded is not None
    assert (
        superseded.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.superseded
    )


def test_empty_crl(private_ca: Authority, clock: FixedClock) -> None:
    now = clock.now()
    der = build_crl(
        private_ca, [], this_update=now, next_update=now + timedelta(days=7), crl_number=1
    )
    crl = x509.load_der_x509_crl(der)
    assert len(crl) == 0
    assert crl.is_signature_valid(private_ca.issuer_key.public_key())


def test_crl_refusals(public_ca: Authority, clock: FixedClock) -> None:
    now, later = clock.now(), clock.now() + timedelta(days=1)
    with pytest.raises(CaError, match="reason code 7"):
        build_crl(
            public_ca,
            [RevokedEntry("01", now, 7)],
            this_update=now,
            next_update=later,
            crl_number=1,
        )
    with pytest.raises(CaError, match="nextUpdate"):
        build_crl(public_ca, [], this_update=now, next_update=now, crl_number=1)
    with pytest.raises(CaError, match="CRL number"):
        build_crl(public_ca, [], this_update=now, next_update=later, crl_number=-1)
