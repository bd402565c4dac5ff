"""base64url on the wire has one spelling (RFC 8555 §6.1): no padding, nothing extra."""

from __future__ import annotations

import pytest

from acmefleet.jose.b64 import b64url_decode, b64url_decode_padded, b64url_encode

DATA = bytes(range(256))


@pytest.mark.parametrize("size", range(8))
def test_round_trip(size: int) -> None:
    assert b64url_decode(b64url_encode(DATA[:size])) == DATA[:size]
    assert b64url_decode(b64url_encode(DATA[-size:])) == DATA[-size:]


@pytest.mark.parametrize(
    "text",
    [
        "AA=",  # padding
        "AA==",
        "AAAA=",
        "AA\n",  # "$" matched before a trailing newline
        "AA==\n",
        "A A",
        " AA",
        "AA+/",  # the other base64 alphabet
        "A",  # a length no encoding has
        "AB",  # non-canonical: b"\x00" is "AA"; the stray bits made a second spelling
        "AAB",
        "AAAA\u0660",
    ],
)
def test_anything_but_the_one_spelling_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_padded_is_for_stored_values_only() -> None:
    key = b64url_encode(b"k" * 32)
    assert b64url_decode_padded(key) == b64url_decode_padded(key + "=") == b"k" * 32
    for bad in (key + "\n", key + "===", key + "=\n", "AB"):
        with pytest.raises(ValueError):
            b64url_decode_padded(bad)
