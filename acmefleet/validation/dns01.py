"""dns-01 (RFC 8555 §8.4): the key authorization's digest in a TXT record under the name.

The record is ``_acme-challenge.<name>`` (for ``*.example.com`` the authorization's name is
``example.com``, so ``_acme-challenge.example.com``) and its value is
base64url(SHA-256(key authorization)). Several TXT records may sit there (a wildcard and its
base name are validated at the same time, each with its own value): one matching is enough.

What the DNS belongs to the applicant, so it is bounded like http-01, with the discipline
every DNS check shares (``dnsquery``: one deadline for every query and CNAME followed,
CNAMEs followed at most ``MAX_CNAMES`` deep and never in a loop — ``_acme-challenge``
delegated to a zone the applicant's automation may update is common — one DNS message of
at most 64 KiB, no cache). On top of it:

* **size**: at most ``MAX_TXT_RECORDS`` records are looked at; a record longer than
  ``MAX_TXT_BYTES`` cannot be a digest and is named as such.
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

import dns.rdatatype
import dns.rrset

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.validation.dnsquery import MAX_CNAMES, DnsSettings, Lookup, timed_out

log = logging.getLogger(__name__)

__all__ = ["MAX_CNAMES", "Dns01Validator", "record_name", "txt_value"]

LABEL = "_acme-challenge"
MAX_TXT_RECORDS = 64
# A digest is 43 characters. Longer records are not values at all; 255 bytes (one character
# string) keeps room for anything a misconfigured zone might hold next to it.
MAX_TXT_BYTES = 255


def txt_value(key_authorization: str) -> str:
    """RFC 8555 §8.4: base64url (no padding) of the SHA-256 digest of the key authorization."""
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def record_name(identifier: Identifier) -> str:
    """Where the TXT record sits (a wildcard's ``*.`` removed: RFC 8555 §7.1.3, §8.4)."""
    base = identifier.value.removeprefix("*.")
    return f"{LABEL}.{base}"


class Dns01Validator:
    challenge_type = "dns-01"

    def __init__(self, *, resolvers: Sequence[tuple[str, int]], timeout: timedelta) -> None:
        self.settings = DnsSettings(tuple(resolvers), timeout)
        self.deadline = timeout

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
            raise timed_out(self.settings, f"TXT record {name}") from None
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
        rrset = await Lookup(self.settings, dns.rdatatype.TXT).rrset(name)
        return [] if rrset is None else self._values(rrset, name)

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
