"""Every ACME resource of a running server, fuzzed with hypothesis.

Three kinds of crafted request go to each route (newAccount, newOrder, finalize, the
order, authorization, challenge, certificate and account resources, the orders list,
keyChange, revokeCert; the directory and newNonce; unknown paths and methods):

* raw bodies (random bytes, random JSON, broken JWS objects) with and without the JOSE
  content type;
* properly signed JWS (a fresh nonce, the account's key) whose payload is hostile JSON,
  or a near-valid payload for the route with members replaced, dropped or added;
* near-valid JWS whose protected header has hostile members (alg, kid, url, nonce, jwk).

Whatever is sent, the answer is never a 5xx, it carries a Replay-Nonce, a refusal is an
RFC 8555 problem document, and a refusal leaves every business row as it was (successes
may change them). The server logs no traceback (checked when the module's server stops).

The server runs on SQLite, then on PostgreSQL (each module-scoped test runs on both).

Rate limits are raised far above what the fuzz sends, so that every example gets past
them to the checks behind (tests/integration/test_rate_limits.py covers the limits).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import currently_in_test_context, event, given
from hypothesis import strategies as st

from acmefleet.errors import ProblemType
from tests.support.acme_client import (
    DELETE,
    JOSE_JSON,
    PROBLEM_JSON,
    AccountKey,
    AcmeClient,
    KeyType,
    b64url,
    eab_jws,
    make_csr,
    sign_jws,
)
from tests.support.acmefleet_server import AcmefleetServer, checked_acmefleet
from tests.support.fuzz import (
    b64ish,
    fuzz_settings,
    half,
    hostile_text,
    json_bytes,
    json_value,
    mutated,
    spiked,
    to_json,
)
from tests.support.postgres import PostgresServer, postgres_available

pytestmark = pytest.mark.integration

EXAMPLES = 60  # per signed route and per test below; the unsigned routes get half as many
PROBLEM_TYPES = {kind.urn for kind in ProblemType}
LIMITS = {
    "new_accounts_per_address": '"100000/1h"',
    "eab_failures_per_address": '"100000/1h"',
    "eab_failures_per_credential": '"100000/1h"',
    "new_orders_per_account": '"100000/1h"',
    "new_orders_per_organisation": '"100000/1h"',
    "failed_validations_per_account": '"100000/1h"',
    "pending_authorizations_per_account": "100000",
}
CONTENT_TYPES = [
    JOSE_JSON,
    f"{JOSE_JSON}; charset=utf-8",
    JOSE_JSON.upper(),
    "application/json",
    "application/jose",
    "text/plain",
    "",
]
KEY_TYPES: list[KeyType] = ["ec256", "ec384", "ec521", "rsa2048", "ed25519"]
SIGNED_ROUTES = [
    "new-account",
    "new-order",
    "revoke-cert",
    "key-change",
    "acct",
    "acct-orders",
    "order",
    "finalize",
    "authz",
    "chall",
    "cert",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def acmefleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcmefleetServer]:
    """The server on each store: PostgreSQL refuses values SQLite takes (NUL, say), so
    the fuzz runs against both (a private cluster, tests/support/postgres.py)."""
    workdir = tmp_path_factory.mktemp("acme-fuzz")
    if request.param == "sqlite":
        with checked_acmefleet(workdir, settings=LIMITS) as server:
            yield server
        return
    if not postgres_available():
        pytest.fail("PostgreSQL is needed (scripts/quickstart setup installs it, as root)")
    with PostgresServer() as postgres:
        url = postgres.create_database("acmefleet_fuzz")
        with checked_acmefleet(workdir, settings=LIMITS, database_url=url) as server:
            yield server


@dataclass
class World:
    """What the fuzz aims at: real accounts, orders, authorizations, a challenge, certs."""

    server: AcmefleetServer
    acme: AcmeClient  # an account on the private endpoint: signs every kid request
    public: AcmeClient  # one on the public endpoint, owner of a challenge
    urls: dict[str, str]
    certificates: list[bytes]  # DER, issued to ``acme``
    credentials: list[tuple[str, str]]  # unused EAB credentials for the private endpoint
    finalize_names: list[str] = field(default_factory=lambda: ["fin.example.com", "10.20.0.9"])
    examples: int = 0

    def url(self, route: str) -> str:
        return self.urls[route]

    def new_ready_order(self) -> None:
        """A fresh ready order for finalize (a private endpoint needs no challenge)."""
        created = self.acme.new_order(self.finalize_names)
        assert created.status_code == 201, created.text
        self.urls["order"] = created.headers["Location"]
        self.urls["finalize"] = created.json()["finalize"]


def _client(server: AcmefleetServer, endpoint: str) -> AcmeClient:
    client = AcmeClient(server.directory(endpoint), server.ca_bundle)
    created = client.new_account(server.mint_eab("acme", endpoint))
    assert created.status_code == 201, created.text
    return client


@pytest.fixture(scope="module")
def world(acmefleet: AcmefleetServer) -> Iterator[World]:
    acme, public = _client(acmefleet, "private"), _client(acmefleet, "public")
    certificates = []
    for n in range(3):
        chain = acme.issue_certificate([f"cert{n}.example.com", "10.20.0.7"])
        certificates.append(x509.load_pem_x509_certificates(chain.encode())[0])
    assert acme.kid is not None
    urls = {
        "new-account": acme.url_for("newAccount"),
        "new-order": acme.url_for("newOrder"),
        "revoke-cert": acme.url_for("revokeCert"),
        "key-change": acme.url_for("keyChange"),
        "acct": acme.kid,
        "acct-orders": f"{acme.kid}/orders",
        "directory": acme.directory_url,
        "new-nonce": acme.url_for("newNonce"),
    }
    # An authorization of its own (deactivating it spoils no other order) ...
    spare = acme.new_order(["authz.example.com"]).json()
    urls["authz"] = spare["authorizations"][0]
    # ... a pending http-01 challenge (its validation fails fast: nothing listens) ...
    pending = public.new_order(["chall.example.org"])
    assert pending.status_code == 201, pending.text
    authz = public.get(pending.json()["authorizations"][0]).json()
    urls["chall"] = authz["challenges"][0]["url"]
    urls["cert"] = _certificate_url(acme)
    found = World(
        server=acmefleet,
        acme=acme,
        public=public,
        urls=urls,
        certificates=[c.public_bytes(Encoding.DER) for c in certificates],
        credentials=[acmefleet.mint_eab("acme", "private") for _ in range(3)],
    )
    found.new_ready_order()
    yield found
    acme.close()
    public.close()


def _certificate_url(acme: AcmeClient) -> str:
    orders = acme.get(f"{acme.kid}/orders").json()["orders"]
    for order_url in orders:
        order = acme.get(order_url).json()
        if "certificate" in order:
            return str(order["certificate"])
    raise AssertionError("no certificate was issued")


# -- the properties


def _settle(server: AcmefleetServer) -> dict[str, list[tuple[Any, ...]]]:
    """The business rows once no validation runs in the background (one started by an
    earlier example would otherwise change them under a later one)."""
    deadline = time.monotonic() + 15
    while True:
        rows = server.snapshot()
        if "'processing'" not in repr(rows.get("challenges")) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _event(text: str) -> None:
    """For ``--hypothesis-show-statistics``: what the examples got (outside them: nothing)."""
    if currently_in_test_context():
        event(text)


def _check(
    world: World, response: httpx.Response, before: dict[str, Any], kind: str = "raw"
) -> None:
    world.examples += 1
    status = response.status_code
    _event(f"{kind}: HTTP {status}")
    request = f"{response.request.method} {response.request.url}"
    assert status < 500, f"{request} -> {status}: {response.text[:1000]}"
    assert response.headers.get("Replay-Nonce"), f"{request} -> {status}: no Replay-Nonce"
    if status < 400:
        return
    assert response.headers.get("Content-Type") == PROBLEM_JSON, (request, status)
    if response.request.method != "HEAD":
        document = response.json()
        assert document["type"] in PROBLEM_TYPES, document
        assert document["status"] == status, document
        assert isinstance(document["detail"], str)
        _event(f"{kind}: {document['type'].rsplit(':', 1)[-1]}: {document['detail'][:40]}")
    after = world.server.snapshot()
    changed = [table for table in before if before[table] != after[table]]
    assert not changed, f"{request} -> {status} refused, yet changed {changed}: {response.text}"


# -- what is sent


def _payload_for(world: World, route: str, key: AccountKey | None) -> st.SearchStrategy[Any]:
    """A near-valid payload for ``route``, with members replaced, dropped or added."""
    values = st.one_of(json_value, b64ish, st.sampled_from(list(world.urls.values())))
    if route == "new-account":
        assert key is not None
        eab = _eab_bindings(world, key)
        base = st.builds(
            lambda binding, contact: {
                "termsOfServiceAgreed": True,
                "contact": contact,
                "externalAccountBinding": binding,
            },
            eab,
            st.sampled_from([["mailto:fuzz@example.com"], []]),
        )
        members = [
            "externalAccountBinding",
            "contact",
            "onlyReturnExisting",
            "termsOfServiceAgreed",
        ]
        return mutated(base, members, st.one_of(values, eab))
    if route == "new-order":
        identifiers = st.lists(
            half(
                st.builds(
                    lambda t, v: {"type": t, "value": v},
                    st.sampled_from(["dns", "ip"]),
                    st.sampled_from(
                        ["new.example.com", "*.example.com", "10.20.1.1", "a.example.org"]
                    ),
                ),
                mutated(
                    st.just({"type": "dns", "value": "x.example.com"}), ["type", "value"], values
                ),
            ),
            min_size=1,
            max_size=3,
        )
        times = st.sampled_from(
            ["2030-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "x"]
        )
        base = st.builds(lambda ids: {"identifiers": ids}, identifiers)
        members = ["identifiers", "profile", "notBefore", "notAfter"]
        return mutated(base, members, st.one_of(values, times, identifiers))
    if route == "finalize":
        base = st.builds(lambda csr: {"csr": csr}, _csrs(world))
        return mutated(base, ["csr"], st.one_of(values, _csrs(world)))
    if route == "revoke-cert":
        certificates = _certificates(world)
        base = st.builds(lambda c: {"certificate": c}, certificates)
        reasons = st.one_of(st.integers(-2, 12), st.sampled_from([2**63, 1.0, True, "1"]))
        return mutated(base, ["certificate", "reason"], st.one_of(values, reasons, certificates))
    if route == "key-change":
        assert key is not None
        return _key_changes(world, key)
    if route == "acct":
        base = st.just({"contact": ["mailto:fuzz@example.com"]})
        statuses = st.sampled_from(["valid", "revoked", "Deactivated", ""])
        return mutated(base, ["contact", "status"], st.one_of(values, statuses)).map(_keep_alive)
    if route in ("authz", "chall"):
        base = st.just({"status": "deactivated"} if route == "authz" else {})
        return mutated(base, ["status"], values)
    return st.one_of(st.just(None), st.just({}), json_value)  # POST-as-GET resources


def _keep_alive(payload: dict[str, Any]) -> dict[str, Any]:
    """Everything but deactivating the account that signs the rest of the module."""
    if payload.get("status") == "deactivated":
        return {**payload, "status": "valid"}
    return payload


def _eab_bindings(world: World, key: AccountKey) -> st.SearchStrategy[Any]:
    url = world.url("new-account")
    real = st.sampled_from([kid for kid, _ in world.credentials])
    kids = st.one_of(real, spiked(real), hostile_text, json_value)
    return st.one_of(
        st.builds(
            lambda credential, alg, overrides: eab_jws(
                credential[0], credential[1], url, key.jwk, alg, protected_overrides=overrides
            ),
            st.sampled_from(world.credentials),
            st.sampled_from(["HS256", "HS384", "HS512"]),
            half(
                st.just({}),
                st.dictionaries(
                    st.sampled_from(["alg", "kid", "url", "nonce", "jwk"]),
                    st.one_of(st.just(DELETE), kids, json_value, st.just(url)),
                    min_size=1,
                    max_size=2,
                ),
            ),
        ),
        st.builds(
            lambda kid, secret, payload: eab_jws(
                kid, b64url(secret), url, key.jwk, payload=payload
            ),
            kids,
            st.binary(min_size=16, max_size=32),
            st.one_of(st.none(), json_bytes),
        ),
        json_value,
    )


def _csrs(world: World) -> st.SearchStrategy[str]:
    names = st.lists(
        st.one_of(
            st.sampled_from([*world.finalize_names, "other.example.com", "10.20.0.10"]),
            st.sampled_from(["FIN.example.com", "fin.example.com.", "*.example.com", "::1"]),
        ),
        min_size=1,
        max_size=3,
    )
    csrs = st.builds(lambda n: make_csr([*world.finalize_names, *n])[0], names)
    return st.one_of(
        csrs.map(b64url),
        st.tuples(csrs, st.integers(0, 2**16), st.integers(1, 255)).map(
            lambda t: b64url(_flip(t[0], t[1] % min(len(t[0]), 12), t[2]))
        ),
        st.binary(max_size=300).map(b64url),
        b64ish,
    )


def _certificates(world: World) -> st.SearchStrategy[str]:
    real = st.sampled_from(world.certificates)
    return st.one_of(
        real.map(b64url),
        st.tuples(real, st.integers(0, 2**16), st.integers(1, 255), st.booleans()).map(
            lambda t: b64url(_flip(t[0], t[1] % (16 if t[3] else len(t[0])), t[2]))
        ),
        st.binary(max_size=300).map(b64url),
        b64ish,
    )


def _flip(data: bytes, at: int, mask: int) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


def _key_changes(world: World, new: AccountKey) -> st.SearchStrategy[Any]:
    """keyChange payloads: an inner JWS signed by ``new``, its header and payload mutated."""
    acme, url = world.acme, world.url("key-change")
    values = st.one_of(json_value, st.sampled_from([acme.kid, url, acme.key.jwk]))
    headers = mutated(
        st.just({"alg": new.alg, "jwk": new.jwk, "url": url}),
        ["alg", "jwk", "url", "nonce", "kid"],
        values,
    )
    payloads = mutated(
        st.just({"account": acme.kid, "oldKey": acme.key.jwk}), ["account", "oldKey"], values
    )
    signed = st.builds(lambda h, p: sign_jws(h, to_json(p), new), headers, payloads)
    return half(signed, json_value)


_RSA: dict[str, AccountKey] = {}


def _fresh_key(kind: KeyType) -> AccountKey:
    """A new key each time, except RSA (slow to generate): one per module."""
    if kind.startswith("rsa"):
        return _RSA.setdefault(kind, AccountKey.generate(kind))
    return AccountKey.generate(kind)


def _header_overrides(world: World) -> st.SearchStrategy[dict[str, Any]]:
    """One to three protected-header members replaced (``DELETE`` drops one): half of the
    time by a value made for that member, else by any JSON value."""
    acme = world.acme
    assert acme.kid is not None
    prefix = acme.kid.rsplit("/", 1)[0] + "/"
    kids = st.one_of(
        spiked(st.sampled_from([acme.kid, prefix + "x"])),
        st.builds(lambda t: prefix + t, hostile_text),
        st.builds(lambda t: acme.kid + t, st.sampled_from(["/", "\n", "x", "/orders", "\ud800"])),
        st.just(world.public.kid),
        hostile_text,
    )
    jwks = st.one_of(
        st.just(acme.key.jwk),
        st.builds(
            lambda m, v: {**acme.key.jwk, m: v},
            st.sampled_from(["kty", "crv", "x", "y", "d"]),
            st.one_of(json_value, b64ish),
        ),
        st.sampled_from(KEY_TYPES).map(lambda k: _fresh_key(k).jwk),
    )
    made_for = {
        "kid": kids,
        "jwk": jwks,
        "url": st.one_of(st.sampled_from(list(world.urls.values())), hostile_text),
        "nonce": b64ish,
        "alg": st.sampled_from(["ES256", "ES384", "ES512", "RS256", "HS256", "none", "EdDSA"]),
        "crit": st.sampled_from([["b64"], ["exp"], [], "b64"]),
        "b64": st.booleans(),
    }
    members = st.lists(st.sampled_from(list(made_for)), min_size=1, max_size=3, unique=True)
    return members.flatmap(
        lambda chosen: st.fixed_dictionaries(
            {name: half(made_for[name], st.one_of(st.just(DELETE), json_value)) for name in chosen}
        )
    )


# -- the tests


@pytest.mark.parametrize("route", SIGNED_ROUTES)
@given(data=st.data())
@fuzz_settings(EXAMPLES)
def test_signed_route(world: World, route: str, data: st.DataObject) -> None:
    kind = data.draw(half(st.just("payload"), st.sampled_from(["raw", "header"])), label="kind")
    url = world.url(route)
    if route == "acct-orders" and data.draw(st.booleans(), label="query"):
        url += "?cursor=" + quote(
            data.draw(hostile_text, label="cursor").encode("utf-8", "surrogatepass")
        )
    # newAccount is signed by a new key; keyChange's inner JWS by the account's next key.
    key: AccountKey | None = None
    if route in ("new-account", "key-change"):
        key = _fresh_key(data.draw(st.sampled_from(KEY_TYPES), label="key type"))
    signer = key if route == "new-account" else None
    before = _settle(world.server)
    acme = world.public if route == "chall" else world.acme  # the challenge is the public one's
    if kind == "raw":
        body = data.draw(
            st.one_of(json_bytes, _payload_for(world, route, key).map(to_json)), label="body"
        )
        content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content-type")
        response = acme.send_jws(url, body, content_type)
    else:
        payload = data.draw(
            half(_payload_for(world, route, key), st.one_of(json_value, json_bytes)),
            label="payload",
        )
        encoded = payload if isinstance(payload, bytes) or payload is None else to_json(payload)
        overrides = (
            data.draw(_header_overrides(world), label="header") if kind == "header" else None
        )
        response = acme.post(
            url, encoded, protected_overrides=overrides, key=signer, use_jwk=signer is not None
        )
    if route == "key-change" and response.status_code == 200:
        assert key is not None
        world.acme.key = key  # the account's key changed: sign with the new one from now on
    _check(world, response, before, kind)
    if route == "finalize" and response.status_code == 200:
        world.new_ready_order()


@pytest.mark.parametrize("route", ["directory", "new-nonce"])
@given(data=st.data())
@fuzz_settings(EXAMPLES // 2)
def test_unsigned_route(world: World, route: str, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]))
    body = data.draw(json_bytes) if method in ("POST", "PUT") else b""
    content_type = data.draw(st.sampled_from(CONTENT_TYPES))
    before = _settle(world.server)
    response = world.acme.http.request(
        method, world.url(route), content=body, headers={"Content-Type": content_type}
    )
    _check(world, response, before)


path_parts = st.one_of(
    st.sampled_from(
        [
            "acct/{id}",
            "acct/{id}/orders",
            "order/{id}",
            "order/{id}/finalize",
            "authz/{id}",
            "chall/{id}",
            "cert/{id}",
            "new-order/",
            "directory/",
            "DIRECTORY",
            "",
        ]
    ),
    hostile_text,
)
ids = st.one_of(st.text("abcXYZ019_-", min_size=1, max_size=64), hostile_text, st.just("a" * 65))


@given(
    endpoint=st.one_of(st.sampled_from(["private", "public", "nope"]), hostile_text),
    part=path_parts,
    identifier=ids,
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
    body=json_bytes,
)
@fuzz_settings(EXAMPLES)
def test_unknown_paths_and_methods(
    world: World, endpoint: str, part: str, identifier: str, method: str, body: bytes
) -> None:
    path = f"/acme/{endpoint}/{part.replace('{id}', identifier)}"
    encoded = quote(path.encode("utf-8", "surrogatepass"), safe="/")
    before = _settle(world.server)
    response = world.acme.http.request(
        method, world.server.base_url + encoded, content=body, headers={"Content-Type": JOSE_JSON}
    )
    _check(world, response, before)


IDENTITIES = ["kid", "eab-kid", "jwk"]


@pytest.mark.parametrize("member", IDENTITIES)
@given(data=st.data())
@fuzz_settings(EXAMPLES)
def test_key_identifiers(world: World, member: str, data: st.DataObject) -> None:
    """What names the signer, aimed at directly: the outer ``kid`` (an account URL), the
    EAB ``kid`` (a credential id), the ``jwk`` (newAccount's key): right values with one
    troublemaker inserted, right values' neighbours, and anything at all."""
    acme = world.acme
    assert acme.kid is not None
    before = _settle(world.server)
    if member == "kid":
        prefix = acme.kid.rsplit("/", 1)[0] + "/"
        kid = data.draw(
            half(
                spiked(st.sampled_from([acme.kid, prefix + "x"])),
                st.one_of(hostile_text, json_value),
            ),
            label="kid",
        )
        order = {"identifiers": [{"type": "dns", "value": "kid.example.com"}]}
        response = acme.post(
            world.url("new-order"), to_json(order), protected_overrides={"kid": kid}
        )
    else:
        key = _fresh_key("ec256")
        credential = data.draw(st.sampled_from(world.credentials), label="credential")
        overrides: dict[str, Any] = {}
        if member == "eab-kid":
            overrides["eab"] = data.draw(
                half(spiked(st.just(credential[0])), st.one_of(hostile_text, json_value)),
                label="eab kid",
            )
        else:
            overrides["jwk"] = data.draw(
                st.one_of(
                    st.builds(
                        lambda m, v: {**key.jwk, m: v},
                        st.sampled_from(["kty", "crv", "x", "y", "d", "kid"]),
                        st.one_of(
                            spiked(st.sampled_from(["EC", "P-256", key.jwk["x"]])),
                            json_value,
                            b64ish,
                        ),
                    ),
                    json_value,
                ),
                label="jwk",
            )
        binding = eab_jws(
            *credential,
            world.url("new-account"),
            key.jwk,
            protected_overrides={"kid": overrides["eab"]} if "eab" in overrides else None,
        )
        payload = {"termsOfServiceAgreed": True, "externalAccountBinding": binding}
        response = acme.post(
            world.url("new-account"),
            to_json(payload),
            key=key,
            use_jwk=True,
            protected_overrides={"jwk": overrides["jwk"]} if "jwk" in overrides else None,
        )
    _check(world, response, before, member)


def test_the_fuzz_reached_the_handlers(world: World) -> None:
    """After the fuzz, the account still works: the examples were not all refused early."""
    assert world.acme.account().status_code == 200
    assert world.examples >= EXAMPLES * len(SIGNED_ROUTES)


# -- what the fuzz found, pinned


def _refused(world: World, send: Any) -> dict[str, Any]:
    before = _settle(world.server)
    response = send()
    _check(world, response, before)
    assert 400 <= response.status_code < 500, response.text
    return dict(response.json())


def test_lone_surrogates_in_kids_are_malformed(world: World) -> None:
    """A kid, or an EAB key id, holding "\\ud800" reached SQLite: UnicodeEncodeError, a 500."""
    acme = world.acme
    assert acme.kid is not None
    order = {"identifiers": [{"type": "dns", "value": "s.example.com"}]}
    for kid in (acme.kid + "\ud800", acme.kid.rsplit("/", 1)[0] + "/\udfff"):
        document = _refused(
            world,
            lambda kid=kid: acme.post(
                world.url("new-order"), order, protected_overrides={"kid": kid}
            ),
        )
        assert document["type"] == ProblemType.MALFORMED.urn
        assert "surrogate" in document["detail"]
    with AcmeClient(world.server.directory("private"), world.server.ca_bundle) as newcomer:
        binding = eab_jws(
            "kid\ud800", b64url(b"k" * 32), world.url("new-account"), newcomer.key.jwk
        )
        document = _refused(
            world, lambda: newcomer.new_account(extra={"externalAccountBinding": binding})
        )
    assert document["type"] == ProblemType.MALFORMED.urn


def test_a_certificate_of_an_unknown_version_is_malformed(world: World) -> None:
    """cryptography's InvalidVersion is no ValueError: revokeCert answered a 500."""
    der = world.certificates[0]
    version = der.index(b"\xa0\x03\x02\x01\x02") + 4  # [0] EXPLICIT INTEGER 2 (v3)
    for wrong in (b"\x03", b"\x07"):
        bad = der[:version] + wrong + der[version + 1 :]
        document = _refused(world, lambda bad=bad: world.acme.revoke(bad))
        assert document["type"] == ProblemType.MALFORMED.urn
