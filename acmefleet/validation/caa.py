"""CAA (RFC 8659, with the RFC 8657 parameters): may this CA issue for a name?

**The relevant RRset** (RFC 8659 §3): CAA is asked for at the name, then at each parent up to
but excluding the root; the first non-empty answer is the relevant one, and nothing above it
counts. CNAMEs are followed as a resolver follows them (the RRset at the end of the chain is
the name's), and the climb goes on from the *name*'s parent, never the CNAME target's. An
NXDOMAIN or a name without CAA records is empty: climb on. A wildcard (``*.example.com``) is
looked up at its base name (``example.com``).

**The properties** (RFC 8659 §4): tags are matched without regard to case.

* an unknown tag with the critical flag (128) forbids issuance, whatever else is there;
* for a wildcard, the ``issuewild`` properties decide if there is at least one, else
  ``issue``; for any other name ``issuewild`` is ignored;
* no property of the kind that decides: anyone may issue;
* otherwise one of them must authorise this CA: its issuer domain name is one of the
  endpoint's ``caa_identities`` (``;`` alone names no issuer, so authorises nobody), and its
  parameters hold: ``accounturi`` equals the requesting account's URL (RFC 8657 §3) and
  ``validationmethods`` lists the method that proved control (RFC 8657 §4). Other parameters
  are ignored (RFC 8659 §4.2 leaves them to the issuer they name);
* a property whose value does not parse (RFC 8659 §4.2's grammar, a parameter given twice,
  a method label that is no label) authorises nobody, but still counts as present.

**Lookup failures refuse.** A SERVFAIL, a refusal, a time-out or a CNAME loop at any step of
the walk ends the check with a ``dns`` problem and no certificate. CA/B BR 3.2.2.8 would let a
CA treat a lookup failure as permission only when the failure is outside its infrastructure,
the lookup was retried, and the domain's zone has no DNSSEC chain to the ICANN root; this
validator cannot tell the last apart (it does not validate DNSSEC), so, like Let's Encrypt,
it never takes a failure for permission.

The check is a pure function of (DNS settings, name, wildcard, account URI, method, issuer
domain names): ``check_caa`` / ``CaaChecker.check``. It holds no state and reads no database,
so a remote validation perspective runs the very same check.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import dns.name
import dns.rdatatype
import dns.rdtypes.ANY.CAA

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.validation.dnsquery import DnsSettings, Lookup, timed_out

log = logging.getLogger(__name__)

# CA/B BR 3.2.2.8: CAA is checked within 8 hours before issuance (or at validation, if that
# was at most 8 hours ago).
MAX_AGE = timedelta(hours=8)
CRITICAL = 0x80
# Tags this CA understands (and so never refuses for being critical): RFC 8659's, the CA/B
# BR contact tags (A.1), RFC 9495's issuemail and the BIMI issuevmc. Only issue/issuewild
# decide for a TLS server certificate.
KNOWN_TAGS = frozenset(
    {"issue", "issuewild", "iodef", "contactemail", "contactphone", "issuemail", "issuevmc"}
)
# RFC 8659 §4.2: label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))
_LABEL = r"[A-Za-z0-9](?:-*[A-Za-z0-9])*"
_ISSUER = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_TAG = re.compile(_LABEL)
_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e]*")  # any VCHAR but ";"
_WSP = " \t"
# RFC 8657 §4: a validation method label is 1*(ALPHA / DIGIT / "-").
_METHOD = re.compile(r"[A-Za-z0-9-]+")
SHOWN_RECORDS = 4  # at most this many records quoted in a problem's detail


class MalformedValue(ValueError):
    """An issue/issuewild value outside RFC 8659 §4.2's grammar."""


@dataclass(frozen=True)
class CaaRecord:
    flags: int
    tag: str  # lower case
    value: bytes

    def __str__(self) -> str:
        text = self.value.decode("ascii", "backslashreplace").replace('"', '\\"')
        return f'{self.flags} {self.tag} "{text}"'

    @property
    def critical(self) -> bool:
        return bool(self.flags & CRITICAL)


@dataclass(frozen=True)
class IssueValue:
    """A parsed issue/issuewild value: the issuer (None for ``;``) and its parameters."""

    issuer: str | None
    parameters: dict[str, str] = field(default_factory=dict)


def parse_issue_value(raw: bytes) -> IssueValue:
    """RFC 8659 §4.2::

        issue-value = *WSP [issuer-domain-name *WSP] [";" *WSP [parameters *WSP]]
        parameters = (parameter *WSP ";" *WSP parameters) / parameter
        parameter = tag *WSP "=" *WSP value

    A parameter named twice is refused too: which of the two would hold is anyone's guess.
    """
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedValue("not ASCII") from None
    head, semicolon, rest = text.partition(";")
    issuer_text = head.strip(_WSP)
    if issuer_text and not _ISSUER.fullmatch(issuer_text):
        raise MalformedValue(f"{issuer_text!r} is not an issuer domain name")
    parameters: dict[str, str] = {}
    rest = rest.strip(_WSP)
    if semicolon and rest:
        for item in rest.split(";"):
            tag, equals, value = item.strip(_WSP).partition("=")
            tag, value = tag.rstrip(_WSP), value.lstrip(_WSP)
            if not equals or not _TAG.fullmatch(tag) or not _VALUE.fullmatch(value):
                raise MalformedValue(f"{item.strip(_WSP)!r} is not a parameter")
            key = tag.lower()
            if key in parameters:
                raise MalformedValue(f"the parameter {tag!r} is given twice")
            parameters[key] = value
    return IssueValue(issuer_text.lower() or None, parameters)


def authorises(
    record: CaaRecord, *, account_uri: str, method: str, issuer_domains: Sequence[str]
) -> bool:
    """One issue/issuewild property names this CA, this account and this method."""
    try:
        parsed = parse_issue_value(record.value)
    except MalformedValue as exc:
        log.info("CAA %s does not parse (%s): authorises nobody", record, exc)
        return False
    if parsed.issuer is None or parsed.issuer not in {d.lower() for d in issuer_domains}:
        return False
    wanted_account = parsed.parameters.get("accounturi")
    if wanted_account is not None and wanted_account != account_uri:
        return False
    methods = parsed.parameters.get("validationmethods")
    if methods is not None:
        labels = methods.split(",")
        if not all(_METHOD.fullmatch(label) for label in labels):
            return False
        if method not in labels:
            return False
    return True


def _shown(records: Sequence[CaaRecord]) -> str:
    quoted = "; ".join(str(r) for r in records[:SHOWN_RECORDS])
    more = len(records) - SHOWN_RECORDS
    return quoted + (f" (and {more} more)" if more > 0 else "")


def evaluate(
    records: Sequence[CaaRecord],
    *,
    wildcard: bool,
    account_uri: str,
    method: str,
    issuer_domains: Sequence[str],
) -> str | None:
    """Why the relevant RRset ``records`` forbids issuance, or None if it allows it."""
    critical = [r for r in records if r.critical and r.tag not in KNOWN_TAGS]
    if critical:
        return f"a critical property this CA does not understand: {_shown(critical)}"
    issue = [r for r in records if r.tag == "issue"]
    issuewild = [r for r in records if r.tag == "issuewild"]
    deciding = issuewild if wildcard and issuewild else issue
    if not deciding:
        return None
    if any(
        authorises(r, account_uri=account_uri, method=method, issuer_domains=issuer_domains)
        for r in deciding
    ):
        return None
    return (
        f"no property authorises this CA ({', '.join(issuer_domains)}), this account and "
        f"the method {method}: {_shown(deciding)}"
    )


@dataclass(frozen=True)
class CaaResult:
    """An allowing check: where the relevant RRset was (None: no CAA up to the TLD)."""

    name: str
    relevant_domain: str | None
    records: tuple[CaaRecord, ...]


def _parents(name: str) -> list[str]:
    """``a.b.example.org`` → itself, then each parent down to the TLD (not the root)."""
    labels = name.rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


async def relevant_rrset(settings: DnsSettings, name: str) -> tuple[str | None, list[CaaRecord]]:
    """RFC 8659 §3: the first non-empty CAA RRset from ``name`` up (the caller holds the
    deadline)."""
    lookup = Lookup(settings, dns.rdatatype.CAA)
    for domain in _parents(name):
        rrset = await lookup.rrset(domain, nxdomain_is_empty=True)
        if rrset is None or len(rrset) == 0:
            continue
        records: list[CaaRecord] = []
        for rdata in rrset:
            assert isinstance(rdata, dns.rdtypes.ANY.CAA.CAA)
            records.append(
                CaaRecord(rdata.flags, rdata.tag.decode("ascii", "replace").lower(), rdata.value)
            )
        return domain, records
    return None, []


async def check_caa(
    settings: DnsSettings,
    name: str,
    *,
    wildcard: bool,
    account_uri: str,
    method: str,
    issuer_domains: Sequence[str],
) -> CaaResult:
    """May a CA known by ``issuer_domains`` issue for ``name`` (``*.name`` if ``wildcard``)
    to the account ``account_uri`` that proved control with ``method``?

    Returns the ``CaaResult`` when it may; raises ``AcmeError`` otherwise: ``caa`` naming the
    record and the domain it was found at, or ``dns`` when the lookup failed (a failure is
    never taken for permission: see the module's note on BR 3.2.2.8). Within
    ``settings.timeout`` in all.
    """
    shown = f"*.{name}" if wildcard else name
    identifier = {"type": "dns", "value": shown}
    seconds = settings.timeout.total_seconds()
    try:
        async with asyncio.timeout(seconds):
            domain, records = await relevant_rrset(
                settings, dns.name.from_text(name).to_text(omit_final_dot=True)
            )
    except TimeoutError:
        error = timed_out(settings, f"CAA records of {name}")
        raise AcmeError(error.type, error.detail, identifier=identifier) from None
    except AcmeError as exc:
        raise AcmeError(
            exc.type,
            f"CAA could not be checked, so nothing is issued: {exc.detail}",
            identifier=identifier,
        ) from None
    if domain is None:
        return CaaResult(name, None, ())
    reason = evaluate(
        records,
        wildcard=wildcard,
        account_uri=account_uri,
        method=method,
        issuer_domains=issuer_domains,
    )
    if reason is not None:
        where = "" if domain == name else f" (found at {domain}, a parent of {name})"
        raise AcmeError(
            ProblemType.CAA,
            f"the CAA records at {domain} forbid issuance for {shown}{where}: {reason}",
            status=403,
            identifier=identifier,
        )
    return CaaResult(name, domain, tuple(records))


class CaaCheck(Protocol):
    """What the server holds to check CAA: ``CaaChecker`` here, or one that corroborates
    the same check from remote perspectives (BR 3.2.2.9) behind the same call."""

    async def check(
        self,
        name: str,
        *,
        wildcard: bool,
        account_uri: str,
        method: str,
        issuer_domains: Sequence[str],
    ) -> CaaResult: ...


@dataclass(frozen=True)
class CaaChecker:
    """``check_caa`` with its DNS settings bound (what the server and validators hold)."""

    settings: DnsSettings

    async def check(
        self,
        name: str,
        *,
        wildcard: bool,
        account_uri: str,
        method: str,
        issuer_domains: Sequence[str],
    ) -> CaaResult:
        return await check_caa(
            self.settings,
            name,
            wildcard=wildcard,
            account_uri=account_uri,
            method=method,
            issuer_domains=issuer_domains,
        )
