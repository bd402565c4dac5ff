"""dns-01 (RFC 8555 §8.4): the key authorization's digest in a TXT record under the name.

The record is ``_acme-challenge.<name>`` (for ``*.example.com`` the authorization's name is
``example.com``, so ``_acme-challenge.example.com``) and its value is
base64url(SHA-256(key authorization)). Several TXT records may sit there (a wildcard and its
base name are validated at the same time, each with its own value): one matching is enough.

What the DNS belongs to the applicant, so it is bounded like http-01:

* **time**: one deadline (``validation.timeout_seconds``) for every query and CNAME followed.
* **CNAMEs**: followed (``_acme-challenge`` delegated to a zone the applicant's automation
  may update is common), at most ``MAX_CNAMES`` of them, never in a loop.
* **size**: an answer is one DNS message (at most 64 KiB over TCP, which dnspython falls
  back to when a UDP answer is truncated). At most ``MAX_TXT_RECORDS`` records are looked at;
  a record longer than ``MAX_TXT_BYTES`` cannot be a digest and is named as such.
* **no cache**: each validation asks again; a resolver's own cache is the operator's choice.
* **errors**: ``dns`` for NXDOMAIN, SERVFAIL, refusals, malformed answers and time-outs;
  ``unauthorized`` when the records are there but none holds the value. Details name the
  record and the resolvers' verdict, never anything else learnt from the network.

No address policy applies: the TXT value is compared, never connected to; the resolvers are
the operator's configuration (``validation.dns_resolvers``), never the applicant's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Sequence
from datetime import timedelta

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier

log = logging.getLogger(__name__)

LABEL = "_acme-challenge"
MAX_CNAMES = 8
MAX_TXT_RECORDS = 64
# A digest is 43 characters. Longer records are not values at all; 255 bytes (one character
# string) keeps room for anything a misconfigured zone might hold next to it.
MAX_TXT_BYTES = 255
# Per query attempt; retries to the next resolver until the overall deadline.
ATTEMPT_SECONDS = 2.0


def txt_value(key_authorization: str) -> str:
    """RFC 8555 §8.4: base64url (no padding) of the SHA-256 digest of the key authorization."""
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def record_name(identifier: Identifier) -> str:
    """Where the TXT record sits (a wildcard's ``*.`` removed: RFC 8555 §7.1.3, §8.4)."""
    base = identifier.value.removeprefix("*.")
    return f"{LABEL}.{base}"


def _dns_problem(detail: str) -> AcmeError:
    return AcmeError(ProblemType.DNS, detail)


def _verdicts(exc: dns.resolver.NoNameservers) -> str:
    """The resolvers' answer codes (SERVFAIL, REFUSED...), or what else failed, in short."""
    found: list[str] = []
    for entry in exc.kwargs.get("errors") or []:
        response = entry[-1] if isinstance(entry, tuple) and entry else None
        if isinstance(response, dns.message.Message):
            verdict = dns.rcode.to_text(response.rcode())
        else:
            verdict = "no usable answer"
        if verdict not in found:
            found.append(verdict)
    return ", ".join(found) or "no usable answer"


class Dns01Validator:
    challenge_type = "dns-01"

    def __init__(self, *, resolvers: Sequence[tuple[str, int]], timeout: timedelta) -> None:
        if timeout <= timedelta(0):
            raise ValueError("the validation timeout must be positive")
        self._resolvers = tuple(resolvers)
        self.deadline = timeout

    def _resolver(self) -> dns.asyncresolver.Resolver:
        """A fresh resolver per validation: nothing cached from one to the next."""
        try:
            resolver = dns.asyncresolver.Resolver(configure=not self._resolvers)
        except dns.exception.DNSException as exc:  # no /etc/resolv.conf, or none in it
            log.error("dns-01: no system resolvers to ask: %s", exc)
            raise _dns_problem("this server has no DNS resolvers to validate with") from None
        if self._resolvers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in self._resolvers
            ]
        seconds = self.deadline.total_seconds()
        resolver.lifetime = seconds
        resolver.timeout = min(ATTEMPT_SECONDS, seconds)
        resolver.cache = None
        return resolver

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        if identifier.type != "dns":
            raise AcmeError(ProblemType.MALFORMED, "dns-01 validates DNS names only")
        await self.expect_txt(record_name(identifier), txt_value(key_authorization))

    async def expect_txt(self, name: str, value: str) -> None:
        """Return if a TXT record at ``name`` (CNAMEs followed) is exactly ``value``; raise
        ``AcmeError`` (``dns`` or ``unauthorized``) otherwise, within ``deadline``.

        dns-01 asks for its digest at ``_acme-challenge.<name>``; the console's DNS check
        (BR 3.2.2.4.7) for its Random Value at its own label: the same lookup, limits and
        errors serve both."""
        seconds = self.deadline.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                values = await self._lookup(name)
        except TimeoutError:
            log.info("dns-01 %s: no answer within %g s", name, seconds)
            raise _dns_problem(
                f"no DNS answer for the TXT record {name} within {seconds:g} s"
            ) from None
        expected = value.encode("ascii")
        if expected in values:
            return
        raise AcmeError(ProblemType.UNAUTHORIZED, self._mismatch(name, values))

    @staticmethod
    def _mismatch(name: str, values: list[bytes]) -> str:
        if not values:
            return f"no TXT record at {name}"
        oversized = sum(1 for v in values if len(v) > MAX_TXT_BYTES)
        detail = f"none of the {len(values)} TXT record(s) at {name} holds the expected value"
        if oversized:
            detail += f" ({oversized} longer than {MAX_TXT_BYTES} bytes: not a dns-01 value)"
        return detail

    async def _lookup(self, name: str) -> list[bytes]:
        """Every TXT value at ``name``, CNAMEs followed (at most MAX_CNAMES)."""
        resolver = self._resolver()
        qname = dns.name.from_text(name)
        seen = {qname}
        followed = 0
        while True:
            answer = await self._query(resolver, qname, name)
            cnames = answer.chaining_result.cnames
            followed += len(cnames)
            if followed > MAX_CNAMES:
                raise _dns_problem(f"more than {MAX_CNAMES} CNAMEs from {name}")
            if answer.rrset is not None:
                return self._values(answer.rrset, name)
            target = answer.canonical_name
            if not cnames:
                return []  # the name exists, with no TXT record (NODATA)
            seen.update(rrset.name for rrset in cnames)
            if target in seen:
                raise _dns_problem(f"the CNAMEs from {name} form a loop")
            # The resolver (an authoritative server, say) answered with a CNAME it could not
            # follow itself: ask for the target.
            seen.add(target)
            qname = target

    async def _query(
        self, resolver: dns.asyncresolver.Resolver, qname: dns.name.Name, name: str
    ) -> dns.resolver.Answer:
        shown = qname.to_text(omit_final_dot=True)
        try:
            return await resolver.resolve(
                qname, dns.rdatatype.TXT, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            raise _dns_problem(f"no such DNS name: {shown} (NXDOMAIN)") from None
        except dns.resolver.LifetimeTimeout:
            seconds = self.deadline.total_seconds()
            log.info("dns-01 %s: resolvers did not answer within %g s", shown, seconds)
            raise _dns_problem(
                f"no DNS answer for the TXT record {shown} within {seconds:g} s"
            ) from None
        except dns.resolver.NoNameservers as exc:
            log.info("dns-01 %s: %s", shown, exc)
            raise _dns_problem(
                f"the DNS resolvers could not answer for the TXT record {shown} ({_verdicts(exc)})"
            ) from None
        except dns.message.ChainTooLong:
            raise _dns_problem(f"more than {MAX_CNAMES} CNAMEs from {name}") from None
        except dns.exception.DNSException as exc:
            log.info("dns-01 %s: %s: %s", shown, type(exc).__name__, exc)
            raise _dns_problem(f"looking up the TXT record {shown} failed") from None

    @staticmethod
    def _values(rrset: dns.rrset.RRset, name: str) -> list[bytes]:
        if len(rrset) > MAX_TXT_RECORDS:
            raise AcmeError(
                ProblemType.UNAUTHORIZED,
                f"{len(rrset)} TXT records at {name}: more than {MAX_TXT_RECORDS} are not "
                "looked at",
            )
        # A TXT record is one or more character strings; its value is their concatenation.
        return [b"".join(rdata.strings) for rdata in rrset]
