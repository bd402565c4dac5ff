"""Property tests of the identifier, contact and newOrder ``identifiers`` parsers.

``parse_identifier`` returns an ``Identifier`` or raises ``IdentifierSyntaxError``;
``check_contacts`` and ``parse_identifiers`` return a value or raise ``AcmeError``. What
they accept is canonical: a DNS name of lower-case LDH labels (a leading ``*.`` at most),
an IP address in its compressed form, a ``mailto:`` URL with one plain address.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import (
    MAX_DNS_NAME_LENGTH,
    Identifier,
    IdentifierSyntaxError,
    parse_identifier,
)
from acmefleet.policy.contacts import MAX_CONTACTS, check_contacts
from acmefleet.policy.orders import MAX_IDENTIFIERS, parse_identifiers
from tests.support.fuzz import (
    assert_problem,
    fuzz_settings,
    half,
    hostile_text,
    json_value,
    mutated,
)

LDH_NAME = re.compile(r"(\*\.)?((?!-)[a-z0-9-]{1,63}(?<!-)\.)+(?!-)[a-z0-9-]{1,63}(?<!-)")
MAILTO = re.compile(r"mailto:[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+", re.IGNORECASE)

label = st.one_of(
    st.text(st.sampled_from("abcz09-AZ"), min_size=1, max_size=10),
    st.sampled_from(["*", "", "-", "xn--bcher-kva", "a" * 63, "a" * 64, "123", "_acme"]),
    st.sampled_from(["é", "\u212a", "\u0130", "a\n", "a\x00", "a b", "a%2e", "\ud800"]),
)
ldh_label = st.text(st.sampled_from("abcz09AZ"), min_size=1, max_size=8)
valid_dns = st.builds(
    lambda star, labels: ("*." if star else "") + ".".join(labels),
    st.booleans(),
    st.lists(ldh_label, min_size=1, max_size=3).map(lambda labels: [*labels, "example"]),
)
dns_names = st.one_of(
    st.lists(label, min_size=1, max_size=6).map(".".join),
    st.lists(label, min_size=1, max_size=3).map(lambda parts: ".".join(parts) + ".example.com"),
    st.integers(1, 140).map(lambda n: ".".join(["ab"] * n)),  # around 253 octets
    st.sampled_from(
        ["example.com.", "EXAMPLE.COM", "*.*.example.com", "a.*.example.com", "1.2.3.4"]
    ),
    hostile_text,
)
ip_texts = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded),
    st.ip_addresses(v=6).map(lambda a: a.exploded.upper()),
    st.sampled_from(
        [
            "::ffff:10.0.0.1",
            "fe80::1%eth0",
            "010.001.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "::",
            "0::0:0",
            "1.2.3.4\n",
            " 1.2.3.4",
            "١٢٣.1.1.1",  # Arabic-Indic digits
            "10.0.0.0/8",
            "2001:db8::1::1",
        ]
    ),
    hostile_text,
)
identifier_values = half(half(dns_names, ip_texts), json_value)
types = half(
    st.sampled_from(["dns", "ip"]), st.one_of(st.sampled_from(["DNS", "email", ""]), json_value)
)
# (type, value): mostly a type with a value of its own kind, valid half of the time.
pairs = half(
    half(
        st.tuples(st.just("dns"), half(valid_dns, dns_names)),
        st.tuples(st.just("ip"), half(st.ip_addresses().map(str), ip_texts)),
    ),
    st.tuples(types, identifier_values),
)


def _assert_canonical(identifier: Identifier, raw: str) -> None:
    if identifier.type == "dns":
        assert LDH_NAME.fullmatch(identifier.value), identifier
        assert identifier.value == raw.lower() and raw.isascii()
        assert len(identifier.value) <= MAX_DNS_NAME_LENGTH
        assert not identifier.value.rsplit(".", 1)[-1].isdigit()
        assert identifier.value.count("*") <= 1
    else:
        assert identifier.type == "ip"
        assert ipaddress.ip_address(identifier.value).compressed == identifier.value
        assert "%" not in identifier.value and "/" not in identifier.value


@given(pairs)
@fuzz_settings(500)
def test_parse_identifier(pair: tuple[Any, Any]) -> None:
    kind, value = pair
    try:
        identifier = parse_identifier(kind, value)
    except IdentifierSyntaxError as error:
        str(error)
        event("refused")
        return
    event(f"accepted {identifier.type}")
    assert identifier.type == kind
    _assert_canonical(identifier, value)
    assert parse_identifier(identifier.type, identifier.value) == identifier  # idempotent


# -- contacts

good_addresses = st.builds(
    "{}@{}.{}".format,
    st.text(st.sampled_from("az09.+_-"), min_size=1, max_size=10),
    st.text(st.sampled_from("az09"), min_size=1, max_size=8),
    st.sampled_from(["com", "example", "io"]),
)
addresses = st.one_of(
    good_addresses,
    st.sampled_from(
        [
            "a@b",
            "a@b.c,d@e.f",
            "a@b.c?cc=d@e.f",
            "<a@b.c>",
            "a@b.c\n",
            "a@@b.c",
            "@b.c",
            "a@.b.c",
            "a@b..c",
            "a@-b.c",
            "a b@c.d",
            "é@b.c",
            "a@b.c%0aBcc:x@y.z",
        ]
    ),
    hostile_text,
)
contacts = half(
    st.builds(lambda address: f"mailto:{address}", good_addresses),
    st.one_of(
        st.builds(
            lambda scheme, address: f"{scheme}:{address}",
            st.sampled_from(["mailto", "MAILTO", "MailTo", "tel", "mailto:", "mail"]),
            addresses,
        ),
        hostile_text,
        json_value,
    ),
)
contact_lists = half(
    st.lists(contacts, max_size=MAX_CONTACTS + 2), st.one_of(st.none(), json_value)
)


@given(contact_lists)
@fuzz_settings(500)
def test_check_contacts(raw: Any) -> None:
    try:
        accepted = check_contacts(raw)
    except AcmeError as error:
        assert_problem(error)
        assert error.type in (
            ProblemType.MALFORMED,
            ProblemType.INVALID_CONTACT,
            ProblemType.UNSUPPORTED_CONTACT,
        )
        event(f"refused: {error.type.value}")
        return
    event("accepted" if accepted else "accepted: none")
    assert accepted == (raw or [])
    assert len(accepted) <= MAX_CONTACTS
    for contact in accepted:
        assert MAILTO.fullmatch(contact), contact
        assert contact.isascii() and "," not in contact and "\n" not in contact
        assert contact.count("@") == 1


# -- newOrder identifiers

wire_identifiers = half(
    st.builds(
        lambda kind, value: {"type": kind, "value": value},
        st.sampled_from(["dns", "ip"]),
        half(valid_dns, half(dns_names, ip_texts)),
    ),
    mutated(
        st.just({"type": "dns", "value": "www.example.com"}),
        ["type", "value"],
        st.one_of(types, identifier_values),
    ),
)
identifier_lists = st.one_of(
    st.lists(wire_identifiers, min_size=1, max_size=5),
    st.lists(wire_identifiers, max_size=0),
    st.integers(MAX_IDENTIFIERS - 1, MAX_IDENTIFIERS + 2).map(
        lambda n: [{"type": "dns", "value": f"n{i}.example.com"} for i in range(n)]
    ),
    json_value,
)


@given(identifier_lists)
@fuzz_settings(500)
def test_parse_identifiers(raw: Any) -> None:
    try:
        parsed = parse_identifiers(raw)
    except AcmeError as error:
        assert_problem(error)
        assert error.type in (
            ProblemType.MALFORMED,
            ProblemType.REJECTED_IDENTIFIER,
            ProblemType.UNSUPPORTED_IDENTIFIER,
        )
        for sub in error.subproblems:
            assert_problem(sub)
        event(f"refused: {error.type.value}")
        return
    event("accepted")
    assert isinstance(raw, list) and 1 <= len(parsed) <= len(raw) <= MAX_IDENTIFIERS
    assert parsed == sorted(set(parsed))
    for identifier in parsed:
        sent = [i["value"] for i in raw if i["type"] == identifier.type]
        assert any(parse_identifier(identifier.type, value) == identifier for value in sent)
        _assert_canonical(identifier, identifier.value)
