"""dns-01 records for the upstream CA, written to the organisation's DNS server with RFC 2136
updates signed with a TSIG key (RFC 8945).

The zone a record goes into is asked of the same server (the SOA its answer for the record's
name carries), unless configured. An update adds one TXT value and removes exactly that value
afterwards: a wildcard and its base name validated together each keep their own record, and
what an operator put there by hand stays. Each update has one deadline; a refusal (NOTAUTH
for a wrong key, REFUSED for a zone the key may not change) is a ``DnsUpdateError`` naming
the record and the server's rcode, never the key.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from acmefleet.upstream.errors import DnsUpdateError

TTL = 60
ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}

# RFC 8945 §5.3.2: what a server says of the TSIG of a request it refuses.
_TSIG_ERRORS: dict[type[Exception], str] = {
    dns.tsig.PeerBadKey: "BADKEY",
    dns.tsig.PeerBadSignature: "BADSIG",
    dns.tsig.PeerBadTime: "BADTIME",
    dns.tsig.PeerBadTruncation: "BADTRUNC",
}


@dataclass(frozen=True)
class Rfc2136Target:
    """The DNS server that takes the updates, and the TSIG key it knows."""

    server: str  # an address: the updates go nowhere a name could redirect
    port: int
    key_name: str
    algorithm: str
    secret: str = field(repr=False)  # base64, as knot, BIND and lego write it
    zone: str | None = None  # asked of the server when not given
    timeout: float = 10.0
    propagation: float = 0.0  # seconds the zone's other servers need to have a record


class Rfc2136Publisher:
    """Adds and removes TXT values through RFC 2136 updates to one server."""

    def __init__(self, target: Rfc2136Target) -> None:
        if target.algorithm not in ALGORITHMS:
            raise ValueError(f"TSIG algorithm must be one of {sorted(ALGORITHMS)}")
        self.target = target
        try:
            self._keyring = dns.tsigkeyring.from_text({target.key_name: target.secret})
        except (ValueError, dns.exception.DNSException):
            # Not chained: the parser's message may quote the secret.
            raise ValueError("the TSIG secret is not base64") from None
        self._zones: dict[str, dns.name.Name] = {}

    async def _zone_of(self, record: str) -> dns.name.Name:
        if self.target.zone is not None:
            return dns.name.from_text(self.target.zone)
        if record in self._zones:
            return self._zones[record]
        try:
            query = dns.message.make_query(record, dns.rdatatype.SOA)
            answer = await dns.asyncquery.tcp(
                query, self.target.server, port=self.target.port, timeout=self.target.timeout
            )
        except (OSError, EOFError, ValueError, dns.exception.DNSException) as exc:
            raise DnsUpdateError(
                f"{self.target.server}:{self.target.port} did not say which zone holds "
                f"{record} ({type(exc).__name__})"
            ) from exc
        for rrset in [*answer.answer, *answer.authority]:
            if rrset.rdtype == dns.rdatatype.SOA:
                self._zones[record] = rrset.name
                return rrset.name
        raise DnsUpdateError(
            f"{self.target.server}:{self.target.port} holds no zone for {record} "
            f"({dns.rcode.to_text(answer.rcode())})"
        )

    async def _update(self, record: str, value: str, *, add: bool) -> None:
        zone = await self._zone_of(record)
        what = "add" if add else "remove"
        try:
            message = dns.update.UpdateMessage(
                zone,
                keyring=self._keyring,
                keyname=dns.name.from_text(self.target.key_name),
                keyalgorithm=ALGORITHMS[self.target.algorithm],
            )
            name = dns.name.from_text(record)
            if add:
                message.add(name, TTL, dns.rdatatype.TXT, f'"{value}"')
            else:
                message.delete(name, dns.rdatatype.TXT, f'"{value}"')
        except (ValueError, dns.exception.DNSException) as exc:
            raise DnsUpdateError(f"no update can {what} a TXT record at {record!r}") from exc
        try:
            answer = await dns.asyncquery.tcp(
                message, self.target.server, port=self.target.port, timeout=self.target.timeout
            )
        except dns.tsig.PeerError as exc:  # the server's TSIG error: the key, not the network
            raise DnsUpdateError(
                f"{self.target.server}:{self.target.port} refused the update to {what} a TXT "
                f"record at {record}: NOTAUTH, TSIG {_TSIG_ERRORS.get(type(exc), 'error')} "
                f"(is key {self.target.key_name} allowed to update this zone, with this secret?)"
            ) from exc
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            raise DnsUpdateError(
                f"the update to {what} a TXT record at {record} failed at "
                f"{self.target.server}:{self.target.port} ({type(exc).__name__})"
            ) from exc
        if answer.rcode() != dns.rcode.NOERROR:
            raise DnsUpdateError(
                f"{self.target.server}:{self.target.port} refused the update to {what} a TXT "
                f"record at {record}: {dns.rcode.to_text(answer.rcode())}"
            )

    async def settled(self) -> None:
        """Wait until the records written can be seen on every authoritative server."""
        if self.target.propagation > 0:
            await asyncio.sleep(self.target.propagation)

    async def publish(self, record: str, value: str) -> None:
        await self._update(record, value, add=True)

    async def withdraw(self, record: str, value: str) -> None:
        await self._update(record, value, add=False)
