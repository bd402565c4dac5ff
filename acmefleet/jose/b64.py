"""base64url (RFC 4648 §5) as ACME uses it (RFC 8555 §6.1, RFC 7515 §2).

On the wire a value has exactly one spelling: the URL-safe alphabet, no padding, no
whitespace, and no stray bits in the last character (decoding then encoding gives the same
string). Anything else is refused: a nonce or a JWS member with two spellings could be
used twice. ``b64url_decode_padded`` is for values this server stored itself (an EAB HMAC
key), where trailing ``=`` padding is tolerated.
"""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")  # used with fullmatch: "$" allows a trailing "\n"
_PADDED = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode canonical unpadded base64url; ValueError on anything else."""
    if not isinstance(text, str) or not _ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if b64url_encode(data) != text:  # non-zero bits after the last whole octet
        raise ValueError("not canonical base64url")
    return data


def b64url_decode_padded(text: str) -> bytes:
    """Like ``b64url_decode``, but trailing ``=`` padding is allowed (stored values only)."""
    if not isinstance(text, str) or not _PADDED.fullmatch(text):
        raise ValueError("not base64url")
    return b64url_decode(text.rstrip("="))
