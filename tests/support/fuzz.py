"""Hypothesis strategies and settings shared by the parser fuzz tests and the endpoint fuzz.

Values come from two sources, mixed: structured JSON (nested objects and arrays of odd
types, huge integers, NaN and infinities, unicode with lone surrogates, control
characters) and strings that look almost right (a valid base64url value with a trailing
newline, ``mailto:`` with two addresses, a DNS name with a Kelvin sign ...), so that a
property reaches past the first check as often as it stops at it.

Two profiles are registered in ``tests/conftest.py``: ``ci`` (the default here:
derandomized, so a failure in CI reproduces on any machine) and ``long`` (random, many
more examples; ``pytest --hypothesis-profile=long``). ``fuzz_settings(n)`` is ``n``
examples under ``ci`` and ``n * ACMEFLEET_FUZZ_SCALE`` (default 20) under ``long``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.jose.b64 import b64url_encode

CI_PROFILE = "ci"
LONG_PROFILE = "long"
_SLOW_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def register_profiles() -> None:
    """``ci`` replays the same examples on every run; ``long`` explores (print_blob to
    reproduce what it finds: ``@reproduce_failure`` is printed with the failure)."""
    common: dict[str, Any] = {
        "deadline": None,
        "database": None,  # no .hypothesis/ directory in the tree
        "print_blob": True,
        "suppress_health_check": [*_SLOW_CHECKS, HealthCheck.function_scoped_fixture],
    }
    settings.register_profile(CI_PROFILE, derandomize=True, **common)
    settings.register_profile(LONG_PROFILE, derandomize=False, **common)


def fuzz_settings(max_examples: int) -> settings:
    """``max_examples`` under ``ci``; scaled up by the ``long`` profile (or the env var)."""
    long_run = settings.get_current_profile_name() == LONG_PROFILE
    scale = int(os.environ.get("ACMEFLEET_FUZZ_SCALE", "20" if long_run else "1"))
    parent = settings.get_profile(LONG_PROFILE if long_run else CI_PROFILE)
    return settings(parent=parent, max_examples=max(1, max_examples * scale))


def half(first: st.SearchStrategy[Any], second: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Each half of the time (``st.one_of`` flattens nested choices and weighs every
    branch alike, so a valid object among many broken kinds would come up rarely)."""
    return st.booleans().flatmap(lambda pick: first if pick else second)


# -- text

# Every code point, lone surrogates included (JSON "\ud800" decodes to one; SQLite and
# UTF-8 encoders refuse it).
any_char = st.characters(codec=None, exclude_categories=())
ODD_STRINGS = [
    "",
    " ",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\ud800",
    "\udfff",
    "\ufeff",
    "\u212a",  # Kelvin sign: lower() is "k"
    "\u0130",  # dotted capital I: lower() is two characters
    "é",
    "NaN",
    "Infinity",
    "-0",
    "null",
    "true",
    "[]",
    "{}",
    "%00",
    "%0a",
    "../",
    "*",
    "*.",
    ".",
    "..",
    "a" * 300,
    "=",
    "==",
    "AAAA\n",
    "AAAA=",
    "AAA",
    "AB",
]
# Half of the time short strings over a small alphabet of troublemakers (a lone surrogate,
# NUL, a newline, the Kelvin sign, separators), so that they come up often.
hostile_text = half(
    st.text(st.sampled_from("aZ09-_.*:@/%=+\n \x00é\u212a\ud800"), min_size=1, max_size=12),
    st.one_of(
        st.sampled_from(ODD_STRINGS),
        st.text(any_char, max_size=40),
        st.integers(4290, 4310).map(lambda n: "9" * n),  # around int()'s digit limit
    ),
)


# One of these put into an otherwise right value (an account URL, a key id): the values
# an encoder, a regex or SQL may choke on, or that change a string's meaning.
TROUBLEMAKERS = [
    "\ud800",  # a lone surrogate: JSON "\ud800" decodes to one; no UTF-8 encoder takes it
    "\udfff",
    "\x00",
    "\n",
    "\r",
    "\u212a",
    "\u0130",
    "é",
    "\ufeff",
    "%00",
    "/",
    " ",
    "\U0001f600",
]


def _spike(text: str, position: int | None, troublemaker: str) -> str:
    at = len(text) if position is None else position % (len(text) + 1)
    return text[:at] + troublemaker + text[at:]


def spiked(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``base`` values with one troublemaker inserted: at the end, or anywhere."""
    positions = half(st.none(), st.integers(0, 2**16))
    return st.builds(_spike, base, positions, st.sampled_from(TROUBLEMAKERS))


def b64(data: bytes) -> str:
    return b64url_encode(data)


# Almost-valid base64url: the right alphabet with a defect (padding, newline, odd length,
# stray final bits, another alphabet), or a valid value.
b64ish = st.one_of(
    st.binary(max_size=64).map(b64),
    st.binary(max_size=64).map(lambda d: b64(d) + "="),
    st.binary(max_size=64).map(lambda d: b64(d) + "\n"),
    st.binary(min_size=1, max_size=64).map(lambda d: b64(d).replace("-", "+").replace("_", "/")),
    st.text(st.sampled_from("ABCDEFabcdef0123456789-_+/=\n "), max_size=24),
    hostile_text,
)

# -- JSON


def _huge(exponent: int) -> int:
    """Powers of two up to 2**13000 (3914 digits): built by ``map`` so that the strategy's
    repr, which hypothesis prints, stays short."""
    return 1 << exponent if exponent >= 0 else -(1 << -exponent) - 1


json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([31, 32, 63, 64, 1024, 13000, -63, -13000]).map(_huge),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
json_key = st.one_of(
    st.sampled_from(
        [
            "alg",
            "kid",
            "jwk",
            "url",
            "nonce",
            "kty",
            "crv",
            "x",
            "y",
            "n",
            "e",
            "d",
            "type",
            "value",
            "identifiers",
            "contact",
            "status",
            "csr",
            "certificate",
            "reason",
            "account",
            "oldKey",
            "protected",
            "payload",
            "signature",
            "externalAccountBinding",
            "onlyReturnExisting",
            "termsOfServiceAgreed",
            "profile",
            "notBefore",
            "notAfter",
        ]
    ),
    hostile_text,
)
json_value: st.SearchStrategy[Any] = st.recursive(
    json_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(json_key, children, max_size=5),
    ),
    max_leaves=20,
)
json_object = st.dictionaries(json_key, json_value, max_size=6)


def deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for n in range(depth):
        value = [value] if n % 2 else {"a": value}
    return value


def to_json(value: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity allowed, as ``json.loads`` accepts them."""
    try:
        return json.dumps(value).encode("utf-8", "surrogatepass")
    except ValueError:  # an integer of more than 4300 digits
        return b"1" + b"0" * 5000


json_bytes = st.one_of(
    json_value.map(to_json),
    st.binary(max_size=200),
    hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(1, 200).map(lambda n: b"[" * n),
    st.integers(30, 40).map(lambda n: to_json(deep(n))),
    st.just(b"[" * 100_000),
    json_value.map(lambda v: to_json(v).decode("utf-8", "surrogatepass").encode("utf-16")),
    json_value.map(lambda v: b"\xef\xbb\xbf" + to_json(v)),
)


# -- near-valid objects


DROP: Any = object()  # in a mutation: remove the member


def apply_mutations(base: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(base)
    for member, value in changes:
        if value is DROP:
            result.pop(member, None)
        else:
            result[member] = value
    return result


def mutated(
    base: st.SearchStrategy[dict[str, Any]],
    members: list[str],
    values: st.SearchStrategy[Any],
    max_changes: int = 3,
) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` objects with up to ``max_changes`` members replaced, dropped or added
    (none, often: the valid object itself reaches the deepest checks)."""
    change = st.tuples(
        st.one_of(st.sampled_from(members), json_key), st.one_of(st.just(DROP), values)
    )
    changes = st.one_of(st.just([]), st.lists(change, min_size=1, max_size=max_changes))
    return st.builds(apply_mutations, base, changes)


# -- problem documents


def assert_problem(error: AcmeError) -> None:
    """What the edge does with an error must work: a JSON problem document."""
    assert isinstance(error.type, ProblemType)
    document = error.as_problem()
    json.dumps(document).encode()
    assert document["type"] == error.type.urn
    assert 400 <= error.http_status < 500, error
