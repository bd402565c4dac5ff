"""ACME Renewal Information (RFC 9773): certificate identifiers and suggested windows.

A certificate is named by its issuer's key identifier and its serial number (§4.1), both
base64url: ``keyIdentifier "." serial``. The suggested window (§4.2) is where in its life a
certificate should be renewed. Without an operator's word it is a fixed part of the
certificate's validity, placed per certificate by a hash of its serial: a fleet whose
certificates were all issued in the same minute does not come back in the same minute, and
the same certificate always gets the same window, whichever replica answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from acmefleet.jose.b64 import b64url_decode, b64url_encode

# Where the default windows start, as fractions of the validity period: spread over
# [60 %, 70 %), each 5 % long, so every window ends by 75 % of the validity (a 90-day
# certificate: renew between day 54 and day 67.5, with at least 22 days left).
WINDOW_EARLIEST = 0.60
WINDOW_SPREAD = 0.10
WINDOW_LENGTH = 0.05
# An issuer key identifier is a SHA-1 (20 octets) or a truncated SHA-256 in practice;
# RFC 5280 §4.1.2.2 bounds serials at 20 octets (21 with the sign octet of DER).
MAX_KEY_ID_OCTETS = 64
MAX_SERIAL_OCTETS = 21
ONE_SECOND = timedelta(seconds=1)


class CertIdError(ValueError):
    """A certID that is not the RFC 9773 §4.1 form; the message is safe to show."""


@dataclass(frozen=True)
class CertId:
    key_identifier: bytes
    serial: int

    @property
    def serial_hex(self) -> str:
        """The serial as stored (lower-case hex, no leading zeros)."""
        return format(self.serial, "x")

    def __str__(self) -> str:
        return f"{b64url_encode(self.key_identifier)}.{b64url_encode(serial_octets(self.serial))}"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def point_for(self, unit: float) -> datetime:
        """The moment ``unit`` (0 ≤ unit < 1) of the way through the window."""
        return self.start + (self.end - self.start) * unit


def serial_octets(serial: int) -> bytes:
    """The content octets of the serial's DER INTEGER (a leading zero keeps it positive)."""
    if serial <= 0:
        raise CertIdError("a certificate serial is positive")
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big")


def parse_cert_id(text: str) -> CertId:
    """``keyIdentifier.serial`` as RFC 9773 §4.1 spells it, each part canonical base64url."""
    parts = text.split(".")
    if len(parts) != 2 or not all(parts):
        raise CertIdError("a certID is two base64url parts joined by '.'")
    try:
        key_identifier, serial = (b64url_decode(part) for part in parts)
    except ValueError as exc:
        raise CertIdError("a certID's parts must be canonical unpadded base64url") from exc
    if len(key_identifier) > MAX_KEY_ID_OCTETS:
        raise CertIdError("the key identifier is too long")
    if len(serial) > MAX_SERIAL_OCTETS:
        raise CertIdError("the serial is longer than RFC 5280 allows")
    if serial[0] & 0x80:
        raise CertIdError("the serial is negative")
    if len(serial) > 1 and serial[0] == 0 and not serial[1] & 0x80:
        raise CertIdError("the serial is not in DER's shortest form")
    value = int.from_bytes(serial, "big")
    if value == 0:
        raise CertIdError("the serial is zero")
    return CertId(key_identifier, value)


def cert_id_of(cert: x509.Certificate) -> CertId:
    """The certID of ``cert``: it needs an Authority Key Identifier with a key identifier."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound as exc:
        raise CertIdError("the certificate has no authority key identifier") from exc
    if aki.key_identifier is None:
        raise CertIdError("the certificate's authority key identifier has no key identifier")
    return CertId(aki.key_identifier, cert.serial_number)


def spread_unit(serial: int) -> float:
    """A number in [0, 1) fixed by the serial and evenly spread over serials."""
    digest = hashlib.sha256(serial_octets(serial)).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def default_window(serial: int, not_before: datetime, not_after: datetime) -> Window:
    """The window a certificate gets when nobody asked for another (see the module text)."""
    validity = not_after - not_before + timedelta(seconds=1)  # RFC 5280: inclusive
    start = not_before + validity * (WINDOW_EARLIEST + WINDOW_SPREAD * spread_unit(serial))
    start = start.replace(microsecond=0)
    # At least a second long: RFC 9773 §4.2 wants an end after the start, and whole
    # seconds of a validity of a few seconds could make them equal.
    end = max((start + validity * WINDOW_LENGTH).replace(microsecond=0), start + ONE_SECOND)
    return Window(start, end)


# A revoked certificate: renew at once, which a window that has already ended says (§4.2):
# the hour up to its revocation.
REVOKED_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Suggestion:
    """The window to answer, and why it is not the default: "revoked", an operator's
    reason, or None (the default)."""

    window: Window
    why: str | None


# Why a relayed certificate's window is not acmefleet's default (RFC 9773 pass-through).
UPSTREAM_WINDOW = "the upstream CA's window"


def served_upstream_window(window: Window, not_after: datetime) -> Window | None:
    """An upstream CA's window as served for its certificate, which is valid until
    ``not_after``: an answer is untrusted, so none when it starts at or after that end (a
    host told so would renew too late, or never); its end held to ``not_after``; whole
    seconds, at least one long (§4.2: the end after the start)."""
    start = window.start.replace(microsecond=0)
    if start >= not_after:
        return None
    end = window.end.replace(microsecond=0)
    if end < window.end:
        end += ONE_SECOND
    return Window(start, max(min(end, not_after), start + ONE_SECOND))


def _sooner(first: Suggestion, second: Suggestion) -> Suggestion:
    """The two windows as one that ends when the sooner ends: a host renews within both."""
    ends_first = first if first.window.end <= second.window.end else second
    start = min(first.window.start, second.window.start)
    return Suggestion(Window(start, ends_first.window.end), ends_first.why)


def suggest(
    serial: int,
    not_before: datetime,
    not_after: datetime,
    *,
    revoked_at: datetime | None,
    chosen: Suggestion | None,
    upstream: Window | None = None,
) -> Suggestion:
    """Renew now once revoked; else within what an operator chose and what the upstream CA
    says (a relayed certificate), whichever ends sooner; else the default window."""
    if revoked_at is not None:
        end = revoked_at.replace(microsecond=0)
        return Suggestion(Window(end - REVOKED_WINDOW, end), "revoked")
    served = None if upstream is None else served_upstream_window(upstream, not_after)
    passed = None if served is None else Suggestion(served, UPSTREAM_WINDOW)
    if chosen is not None and passed is not None:
        return _sooner(chosen, passed)
    only = chosen if chosen is not None else passed
    if only is not None:
        return only
    return Suggestion(default_window(serial, not_before, not_after), None)
