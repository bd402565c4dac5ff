"""The one request a remote network perspective (an ``acmefleet validator`` agent) answers.

Shared by both ends so they cannot drift: the ACME server (``mpic.py``) builds requests and
reads answers; the agent (``acmefleet/agent``) parses requests and builds answers.

Over mutual TLS, ``POST /check`` with a JSON body of at most ``MAX_REQUEST_BYTES``::

    {"kind": "dns-01", "identifier": {"type": "dns", "value": "example.org"},
     "token": "<base64url>", "key_authorization": "<token>.<thumbprint>"}

or, for the CAA check (RFC 8659 with RFC 8657's parameters; BR 3.2.2.9 has CAA corroborated
too), what ``validation/caa.py``'s ``check_caa`` takes::

    {"kind": "caa", "name": "example.org", "wildcard": false,
     "account_uri": "https://acme.example/acme/public/acct/1", "method": "dns-01",
     "issuer_domains": ["acme.example"]}

or, for the console's DNS check (BR 3.2.2.4.7: a Random Value in a TXT record at an
underscore label), a TXT lookup::

    {"kind": "txt", "name": "_acmefleet-challenge.example.org", "value": "<base64url>"}

and the answer, HTTP 200 with JSON of at most ``MAX_ANSWER_BYTES``::

    {"result": "pass"}
    {"result": "fail", "problem": {"type": "urn:ietf:params:acme:error:dns", "detail": "…"}}

Any other status is the agent refusing the request (``{"error": "…"}``): malformed, too large,
busy. The agent never says more than the ACME problem it would itself give a client.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier, IdentifierSyntaxError, parse_identifier

PATH = "/check"
# A request is a few short strings: a name (at most 253), a token and a key authorization
# (each well under 200). 4 KiB leaves room and refuses anything that is not such a request.
MAX_REQUEST_BYTES = 4096
# An answer is a problem document whose detail is one sentence.
MAX_ANSWER_BYTES = 8192
MAX_DETAIL_CHARS = 1000
# RFC 8555 §8.1: a token has at least 128 bits of entropy, base64url without padding (ours
# are 43 characters); a thumbprint is a base64url SHA-256 digest (43 characters).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
# After the token: an ACME account key's thumbprint (43 characters), or the console's
# http-01 marker: a short base64url-alphabet string either way.
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FIELDS = {"kind", "identifier", "token", "key_authorization"}
_PROBLEM_PREFIX = "urn:ietf:params:acme:error:"
_KINDS = re.compile(r"[a-z0-9-]{1,32}")
CAA_KIND = "caa"
_CAA_FIELDS = {"kind", "name", "wildcard", "account_uri", "method", "issuer_domains"}
# An account URL is an https URL of ours: printable ASCII without spaces or ";" (RFC 8659
# §4.2's value grammar: a URI with one could never be matched by an accounturi parameter).
_ACCOUNT_URI = re.compile(r"https://[\x21-\x3a\x3c-\x7e]{1,500}")
# RFC 8657 §4: a validation method label.
_METHOD = re.compile(r"[A-Za-z0-9-]{1,64}")
# RFC 8659 §4.2: an issuer domain name is dot-separated labels.
_LABEL = r"[A-Za-z0-9](?:-*[A-Za-z0-9])*"
_ISSUER = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
MAX_ISSUER_DOMAINS = 8
TXT_KIND = "txt"
_TXT_FIELDS = {"kind", "name", "value"}
_UNDERSCORE_LABEL = re.compile(r"_[a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?")


class BadCheckRequest(ValueError):
    """A request the agent refuses (HTTP 400); the message says which field and why."""


@dataclass(frozen=True)
class CheckRequest:
    kind: str
    identifier: Identifier
    token: str
    key_authorization: str

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "kind": self.kind,
                "identifier": self.identifier.as_wire(),
                "token": self.token,
                "key_authorization": self.key_authorization,
            },
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True)
class CaaRequest:
    """The CAA check of ``name`` (``*.name`` when ``wildcard``) for an account and method."""

    name: str
    wildcard: bool
    account_uri: str
    method: str
    issuer_domains: tuple[str, ...]
    kind: str = CAA_KIND

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "kind": self.kind,
                "name": self.name,
                "wildcard": self.wildcard,
                "account_uri": self.account_uri,
                "method": self.method,
                "issuer_domains": list(self.issuer_domains),
            },
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True)
class TxtRequest:
    """Is a TXT record at ``name`` (an underscore label under a DNS name) exactly ``value``?"""

    name: str
    value: str
    kind: str = TXT_KIND

    def to_json(self) -> bytes:
        return json.dumps(
            {"kind": self.kind, "name": self.name, "value": self.value}, separators=(",", ":")
        ).encode()


PerspectiveRequest = CheckRequest | CaaRequest | TxtRequest


def _parse_txt(raw: dict[str, Any]) -> TxtRequest:
    if set(raw) != _TXT_FIELDS:
        missing = sorted(_TXT_FIELDS - set(raw))
        extra = sorted(set(raw) - _TXT_FIELDS)
        raise BadCheckRequest(f"fields missing: {missing}, unknown: {extra[:5]}")
    name = raw["name"]
    label, _, rest = name.partition(".") if isinstance(name, str) else ("", "", "")
    try:
        if not _UNDERSCORE_LABEL.fullmatch(label) or rest.startswith("*"):
            raise IdentifierSyntaxError(name)
        base = parse_identifier("dns", rest)
    except IdentifierSyntaxError:
        raise BadCheckRequest("'name' must be an underscore label under a DNS name") from None
    value = raw["value"]
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise BadCheckRequest("'value' must be 16 to 128 base64url characters")
    return TxtRequest(f"{label}.{base.value}", value)


def _parse_caa(raw: dict[str, Any]) -> CaaRequest:
    if set(raw) != _CAA_FIELDS:
        missing = sorted(_CAA_FIELDS - set(raw))
        extra = sorted(set(raw) - _CAA_FIELDS)
        raise BadCheckRequest(f"fields missing: {missing}, unknown: {extra[:5]}")
    name = raw["name"]
    try:
        if not isinstance(name, str) or name.startswith("*"):
            raise IdentifierSyntaxError(name)
        identifier = parse_identifier("dns", name)
    except IdentifierSyntaxError:
        raise BadCheckRequest("'name' must be a DNS name (a wildcard's base name)") from None
    wildcard = raw["wildcard"]
    if not isinstance(wildcard, bool):
        raise BadCheckRequest("'wildcard' must be true or false")
    account_uri = raw["account_uri"]
    if not isinstance(account_uri, str) or not _ACCOUNT_URI.fullmatch(account_uri):
        raise BadCheckRequest("'account_uri' must be an https URL of at most 508 characters")
    method = raw["method"]
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise BadCheckRequest("'method' must be a validation method label such as dns-01")
    domains = raw["issuer_domains"]
    if (
        not isinstance(domains, list)
        or not 1 <= len(domains) <= MAX_ISSUER_DOMAINS
        or not all(isinstance(d, str) and len(d) <= 253 and _ISSUER.fullmatch(d) for d in domains)
    ):
        raise BadCheckRequest(
            f"'issuer_domains' must be 1 to {MAX_ISSUER_DOMAINS} issuer domain names"
        )
    return CaaRequest(identifier.value, wildcard, account_uri, method, tuple(domains))


def parse_request(body: bytes) -> PerspectiveRequest:
    """A request as the agent receives it: every field checked, nothing else accepted."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BadCheckRequest(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadCheckRequest("the request is not JSON") from None
    if not isinstance(raw, dict):
        raise BadCheckRequest("the request must be a JSON object")
    if raw.get("kind") == CAA_KIND:
        return _parse_caa(raw)
    if raw.get("kind") == TXT_KIND:
        return _parse_txt(raw)
    if set(raw) != _FIELDS:
        missing = sorted(_FIELDS - set(raw))
        extra = sorted(set(raw) - _FIELDS)
        raise BadCheckRequest(f"fields missing: {missing}, unknown: {extra[:5]}")
    kind = raw["kind"]
    if not isinstance(kind, str) or not _KINDS.fullmatch(kind):
        raise BadCheckRequest("'kind' must be a check name such as dns-01")
    wire = raw["identifier"]
    if (
        not isinstance(wire, dict)
        or set(wire) != {"type", "value"}
        or not all(isinstance(v, str) for v in wire.values())
    ):
        raise BadCheckRequest('\'identifier\' must be {"type": ..., "value": ...}')
    try:
        identifier = parse_identifier(wire["type"], wire["value"])
    except IdentifierSyntaxError:
        raise BadCheckRequest("'identifier' is not a valid DNS name or IP address") from None
    token = raw["token"]
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise BadCheckRequest("'token' must be 16 to 128 base64url characters")
    key_authorization = raw["key_authorization"]
    if (
        not isinstance(key_authorization, str)
        or not key_authorization.startswith(token + ".")
        or not _THUMBPRINT.fullmatch(key_authorization[len(token) + 1 :])
    ):
        raise BadCheckRequest("'key_authorization' must be the token, '.', and a thumbprint")
    return CheckRequest(kind, identifier, token, key_authorization)


def answer(error: AcmeError | None) -> bytes:
    """The agent's answer to a check it ran: pass, or the problem it found."""
    if error is None:
        return b'{"result":"pass"}'
    problem = {"type": error.type.urn, "detail": error.detail[:MAX_DETAIL_CHARS]}
    return json.dumps({"result": "fail", "problem": problem}, separators=(",", ":")).encode()


def parse_answer(body: bytes) -> AcmeError | None:
    """What an agent found (None: it passed). Raise ``ValueError`` for anything that is not an
    answer: the caller counts that perspective as not corroborating."""
    if len(body) > MAX_ANSWER_BYTES:
        raise ValueError("answer too large")
    raw: Any = json.loads(body)
    if not isinstance(raw, dict):
        raise ValueError("answer is not an object")
    if raw.get("result") == "pass":
        return None
    problem = raw.get("problem")
    if raw.get("result") != "fail" or not isinstance(problem, dict):
        raise ValueError("answer has no result")
    urn, detail = problem.get("type"), problem.get("detail")
    if not isinstance(urn, str) or not isinstance(detail, str):
        raise ValueError("problem without type or detail")
    try:
        kind = ProblemType(urn.removeprefix(_PROBLEM_PREFIX))
    except ValueError:
        kind = ProblemType.SERVER_INTERNAL
    # The agent's words end up in a problem the applicant reads: printable and short.
    shown = "".join(c for c in detail if c.isprintable())[:MAX_DETAIL_CHARS]
    return AcmeError(kind, shown)
