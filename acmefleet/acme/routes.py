"""All ACME routes in one short table: the unsigned ones, then the signed ones."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.handlers import (
    accounts,
    authorizations,
    certificates,
    directory,
    orders,
    renewal_info,
)
from acmefleet.acme.http import Request, Response
from acmefleet.acme.signed import Signed
from acmefleet.config import EndpointConfig

SignedHandler = Callable[[AcmeContext, Connection, Signed], Response]
UnsignedHandler = Callable[[AcmeContext, EndpointConfig, Request, dict[str, str]], Response]
KeySource = Literal["jwk", "kid", "either"]
# Before the write transaction, in a read one with the signature verified: the network work
# the handler will need (None: none), awaited outside any transaction.
PrepareHandler = Callable[[AcmeContext, Connection, Signed], Callable[[], Awaitable[object]] | None]
# Whether an endpoint can need that work at all: when it cannot, the read transaction and
# the second signature check of the preparation are skipped.
PrepareWhen = Callable[[AcmeContext, EndpointConfig], bool]


def _always(_ctx: AcmeContext, _endpoint: EndpointConfig) -> bool:
    return True


@dataclass(frozen=True)
class UnsignedRoute:
    pattern: re.Pattern[str]
    handler: UnsignedHandler
    # POST too: a client may fetch any resource with POST-as-GET (RFC 8555 §6.3); these
    # answer the same whoever asks, so the JWS is not examined.
    methods: tuple[str, ...] = ("GET", "HEAD", "POST")


# Fetched without a JWS (RFC 8555 §7.1.1, §7.2; RFC 9773 §4.3: renewalInfo by GET only).
UNSIGNED_ROUTES = (
    UnsignedRoute(re.compile(r"directory\Z"), directory.directory),
    UnsignedRoute(re.compile(r"new-nonce\Z"), directory.new_nonce),
    UnsignedRoute(
        re.compile(r"renewal-info/(?P<cert_id>[A-Za-z0-9_-]{1,100}\.[A-Za-z0-9_-]{1,100})\Z"),
        renewal_info.renewal_info,
        ("GET", "HEAD"),
    ),
)


@dataclass(frozen=True)
class SignedRoute:
    pattern: re.Pattern[str]
    handler: SignedHandler
    key_source: KeySource
    prepare: PrepareHandler | None = None
    prepare_when: PrepareWhen = _always


def _route(
    path: str,
    handler: SignedHandler,
    key_source: KeySource = "kid",
    prepare: PrepareHandler | None = None,
    prepare_when: PrepareWhen = _always,
) -> SignedRoute:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9_-]{1,64})", path)
    return SignedRoute(re.compile(f"{regex}\\Z"), handler, key_source, prepare, prepare_when)


SIGNED_ROUTES = (
    _route("new-account", accounts.new_account, "jwk"),
    _route("new-order", orders.new_order),
    _route("revoke-cert", certificates.revoke_cert, "either"),
    _route("key-change", accounts.key_change),
    _route("acct/{id}", accounts.account),
    _route("acct/{id}/orders", accounts.account_orders),
    _route("order/{id}", orders.order),
    _route(
        "order/{id}/finalize",
        orders.finalize,
        prepare=orders.prepare_finalize,
        prepare_when=orders.finalize_checks_caa,
    ),
    _route("authz/{id}", authorizations.authorization),
    _route("chall/{id}", authorizations.challenge),
    _route("cert/{id}", certificates.certificate),
)

# "\Z", never "$": "$" also matches before a trailing newline, and the ASGI path is
# percent-decoded ("/pki/private/crl%0A" arrives as "/pki/private/crl\n"). Used with match().
ACME_PATH = re.compile(r"/acme/(?P<endpoint>[A-Za-z0-9_-]{1,64})/(?P<rest>.+)\Z")
# OCSP by GET carries the base64 request in the path (RFC 6960 Appendix A.1), "/" included.
PKI_PATH = re.compile(
    r"/pki/(?P<level>[a-z0-9_-]{1,32})/"
    r"(?:(?P<item>issuer\.cer|crl|root\.pem|ocsp)|ocsp/(?P<ocsp_get>[A-Za-z0-9+/=]{1,4096}))\Z"
)


def match_unsigned(rest: str) -> tuple[UnsignedRoute, dict[str, str]] | None:
    for route in UNSIGNED_ROUTES:
        found = route.pattern.match(rest)
        if found:
            return route, found.groupdict()
    return None


def match_signed(rest: str) -> tuple[SignedRoute, dict[str, str]] | None:
    for route in SIGNED_ROUTES:
        found = route.pattern.fullmatch(rest)
        if found:
            return route, found.groupdict()
    return None
