"""DNS lookups for validation (dns-01, CAA): the operator's resolvers, one deadline, no cache.

Shared by every check that asks DNS, so that they all keep the same discipline:

* **resolvers**: ``validation.dns_resolvers`` (address, port), never the applicant's; none
  configured: the system's (/etc/resolv.conf).
* **time**: one deadline for a whole lookup (every query, every CNAME followed, every parent
  of a CAA tree walk); each attempt at most ``ATTEMPT_SECONDS`` before the next resolver.
* **size**: a truncated UDP answer is asked again over TCP (dnspython does it): at most one
  DNS message of 64 KiB.
* **CNAMEs**: followed, at most ``MAX_CNAMES``, never in a loop; an authoritative server that
  answers with a CNAME it cannot follow itself (another zone) is asked for the target.
* **no cache**: a fresh resolver per lookup; a resolver's own cache is the operator's choice.
* **errors**: ``dns`` problems that name the record and the resolvers' verdict (NXDOMAIN,
  SERVFAIL, REFUSED, a time-out), never anything else learnt from the network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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

log = logging.getLogger(__name__)

MAX_CNAMES = 8
# Per query attempt; retries to the next resolver until the overall deadline.
ATTEMPT_SECONDS = 2.0


@dataclass(frozen=True)
class DnsSettings:
    """Where and how long validation may ask DNS: ``[validation] dns_resolvers`` and
    ``timeout_seconds``. A plain value, so a remote validation perspective can hold one."""

    resolvers: tuple[tuple[str, int], ...]
    timeout: timedelta

    def __post_init__(self) -> None:
        if self.timeout <= timedelta(0):
            raise ValueError("the validation timeout must be positive")


def dns_problem(detail: str) -> AcmeError:
    return AcmeError(ProblemType.DNS, detail)


def verdicts(exc: dns.resolver.NoNameservers) -> str:
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


def make_resolver(settings: DnsSettings, what: str) -> dns.asyncresolver.Resolver:
    """A fresh resolver for one lookup: nothing cached from one to the next."""
    try:
        resolver = dns.asyncresolver.Resolver(configure=not settings.resolvers)
    except dns.exception.DNSException as exc:  # no /etc/resolv.conf, or none in it
        log.error("%s: no system resolvers to ask: %s", what, exc)
        raise dns_problem("this server has no DNS resolvers to validate with") from None
    if settings.resolvers:
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(address, port) for address, port in settings.resolvers
        ]
    seconds = settings.timeout.total_seconds()
    resolver.lifetime = seconds
    resolver.timeout = min(ATTEMPT_SECONDS, seconds)
    resolver.cache = None
    return resolver


def timed_out(settings: DnsSettings, record: str) -> AcmeError:
    seconds = settings.timeout.total_seconds()
    return dns_problem(f"no DNS answer for the {record} within {seconds:g} s")


class Lookup:
    """One lookup of ``rdtype`` records (one resolver, one deadline held by the caller)."""

    def __init__(self, settings: DnsSettings, rdtype: dns.rdatatype.RdataType) -> None:
        self.settings = settings
        self.rdtype = rdtype
        self.kind = dns.rdatatype.to_text(rdtype)
        self.resolver = make_resolver(settings, self.kind)

    async def rrset(self, name: str, *, nxdomain_is_empty: bool = False) -> dns.rrset.RRset | None:
        """The ``rdtype`` RRset at ``name`` with CNAMEs followed; None when the name (or the
        CNAMEs' end) has none. NXDOMAIN is a ``dns`` problem unless ``nxdomain_is_empty``."""
        qname = dns.name.from_text(name)
        seen = {qname}
        followed = 0
        while True:
            answer = await self._query(qname, name, nxdomain_is_empty)
            if answer is None:
                return None
            cnames = answer.chaining_result.cnames
            followed += len(cnames)
            if followed > MAX_CNAMES:
                raise dns_problem(f"more than {MAX_CNAMES} CNAMEs from {name}")
            if answer.rrset is not None:
                return answer.rrset
            target = answer.canonical_name
            if not cnames:
                return None  # the name exists, with no such record (NODATA)
            seen.update(rrset.name for rrset in cnames)
            if target in seen:
                raise dns_problem(f"the CNAMEs from {name} form a loop")
            # The resolver (an authoritative server, say) answered with a CNAME it could not
            # follow itself: ask for the target.
            seen.add(target)
            qname = target

    async def _query(
        self, qname: dns.name.Name, name: str, nxdomain_is_empty: bool
    ) -> dns.resolver.Answer | None:
        shown = qname.to_text(omit_final_dot=True)
        record = f"{self.kind} record {shown}"
        try:
            return await self.resolver.resolve(
                qname, self.rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            if nxdomain_is_empty:
                return None
            raise dns_problem(f"no such DNS name: {shown} (NXDOMAIN)") from None
        except dns.resolver.LifetimeTimeout:
            log.info("%s: resolvers did not answer within the deadline", record)
            raise timed_out(self.settings, record) from None
        except dns.resolver.NoNameservers as exc:
            log.info("%s: %s", record, exc)
            raise dns_problem(
                f"the DNS resolvers could not answer for the {record} ({verdicts(exc)})"
            ) from None
        except dns.message.ChainTooLong:
            raise dns_problem(f"more than {MAX_CNAMES} CNAMEs from {name}") from None
        except dns.exception.DNSException as exc:
            log.info("%s: %s: %s", record, type(exc).__name__, exc)
            raise dns_problem(f"looking up the {record} failed") from None
