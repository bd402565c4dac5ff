"""Pulling certificates' renewal windows forward (RFC 9773 §4.2), as an operator decides.

A CA incident, a key compromise or a change of hierarchy means a set of certificates must
be replaced soon. The operator names the set (an organisation, an endpoint, an issuing CA,
a name, a list of serials; at least one of them), why, and within how long: each
certificate still in force gets the window [now, now + within] (ending no later than the
window it had and its expiry: pulling forward never puts a renewal off), which renewalInfo
answers from then on, so ARI clients and the hosts' renew-check renew spread over that window. One
audit event records the selection, the reason and how many certificates it took.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from acmefleet.ca.renewal_info import Suggestion, Window, suggest
from acmefleet.console.errors import ConsoleError
from acmefleet.models import Certificate
from acmefleet.store import audit, renewals, upstream_windows
from acmefleet.store import certificates as cert_store

SHORTEST_WITHIN = timedelta(minutes=1)
LONGEST_WITHIN = timedelta(days=90)
MAX_REASON = 500
MAX_SERIALS = 100_000


@dataclass(frozen=True)
class Selection:
    org_id: int | None = None
    endpoint: str | None = None
    issuer: str | None = None  # the issuing CA: a trust level, or "upstream:NAME"
    name: str | None = None  # a name the certificate holds (a host's), exactly
    serials: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not any((self.org_id, self.endpoint, self.issuer, self.name, self.serials))

    def matches(self, cert: Certificate, serials: frozenset[str]) -> bool:
        return (
            (self.org_id is None or cert.org_id == self.org_id)
            and (self.endpoint is None or cert.endpoint == self.endpoint)
            and (self.issuer is None or cert.ca_level == self.issuer)
            and (self.name is None or self.name.lower() in cert.names)
            and (not serials or cert.serial_hex in serials)
        )


@dataclass(frozen=True)
class PulledForward:
    window: Window
    certificates: list[Certificate]


def normalise_serial(text: str) -> str:
    """A serial as stored (lower-case hex, no leading zeros), from hex with or without colons."""
    cleaned = text.strip().replace(":", "").lower()
    if not cleaned or len(cleaned) > 42 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ConsoleError(f"{text[:50]!r} is not a certificate serial in hex")
    return format(int(cleaned, 16), "x")


def _check(selection: Selection, reason: str, within: timedelta) -> None:
    if selection.is_empty():
        raise ConsoleError(
            "name the certificates: an organisation, endpoint, issuer, name or serials"
        )
    if len(selection.serials) > MAX_SERIALS:
        raise ConsoleError(f"at most {MAX_SERIALS} serials at once")
    if not reason.strip() or len(reason) > MAX_REASON:
        raise ConsoleError(f"a reason of 1 to {MAX_REASON} characters is required")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in reason):
        raise ConsoleError("the reason may not contain control characters")
    if not SHORTEST_WITHIN <= within <= LONGEST_WITHIN:
        raise ConsoleError("'within' must be between one minute and 90 days")


def pull_forward(
    conn: Connection,
    selection: Selection,
    *,
    reason: str,
    within: timedelta,
    actor: str,
    now: datetime,
    source: str | None = None,
) -> PulledForward:
    """Give every selected certificate in force the window [now, now + within]."""
    _check(selection, reason, within)
    serials = frozenset(normalise_serial(s) for s in selection.serials)
    found = [c for c in cert_store.list_certificates(conn) if selection.matches(c, serials)]
    unknown = sorted(serials - {c.serial_hex for c in found})
    if unknown:
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise ConsoleError(f"no such certificate: serial {unknown[0]}{more}")
    replaced = renewals.replaced_certificates(conn)
    chosen = [
        c for c in found if c.revoked_at is None and c.not_after > now and c.id not in replaced
    ]
    window = Window(now, now + within)
    current = renewals_of(conn, chosen)
    renewals.set_windows(
        conn,
        [
            renewals.SetWindow(
                c.id,
                now,
                _pulled_end(window.end, c, current[c.id].suggested, now),
                reason.strip(),
                actor,
                now,
            )
            for c in chosen
        ],
    )
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="certificate.renewal-pulled-forward",
        target=f"{len(chosen)} certificates",
        source=source,
        details={
            # The serials by count: the rows of renewal_windows name each certificate.
            "selection": {k: v for k, v in asdict(selection).items() if v and k != "serials"},
            "serials": len(serials),
            "reason": reason.strip(),
            "within_seconds": int(within.total_seconds()),
            "certificates": len(chosen),
        },
    )
    return PulledForward(window, chosen)


@dataclass(frozen=True)
class CertificateRenewal:
    """What the inventory shows of a certificate's renewal: the window renewalInfo answers
    and why (``Suggestion``), and whether a finalized order replaced it."""

    suggested: Suggestion
    replaced: bool


def renewals_of(conn: Connection, certs: list[Certificate]) -> dict[str, CertificateRenewal]:
    """Each certificate's renewal: one certificate by its own rows (a show or a revoke must
    not read every window of the inventory), a list from two reads whatever its length."""
    if not certs:
        return {}
    if len(certs) == 1:
        only = certs[0].id
        window = renewals.window_of(conn, only)
        chosen = {} if window is None else {only: window}
        replaced = {only} if renewals.replaced_by(conn, only) is not None else set()
        passed = upstream_windows.window_of(conn, only)
        upstream = {} if passed is None else {only: passed}
    else:
        chosen = renewals.all_windows(conn)
        replaced = renewals.replaced_certificates(conn)
        upstream = upstream_windows.all_windows(conn)
    found: dict[str, CertificateRenewal] = {}
    for cert in certs:
        set_window = chosen.get(cert.id)
        from_upstream = upstream.get(cert.id)
        suggested = suggest(  # as renewalInfo answers (policy.renewal_info.info_for)
            int(cert.serial_hex, 16),
            cert.not_before,
            cert.not_after,
            revoked_at=cert.revoked_at,
            chosen=None
            if set_window is None
            else Suggestion(Window(set_window.start, set_window.end), set_window.reason),
            upstream=None
            if from_upstream is None
            else Window(from_upstream.start, from_upstream.end),
        )
        found[cert.id] = CertificateRenewal(suggested, cert.id in replaced)
    return found


def _pulled_end(asked: datetime, cert: Certificate, current: Suggestion, now: datetime) -> datetime:
    """When a pulled-forward window ends: as asked, but never later than the window the
    certificate had (pulling forward never puts renewal off) nor than the certificate's
    expiry; at least a second after ``now``."""
    end = min(asked, cert.not_after)
    if current.window.end > now:
        end = min(end, current.window.end)
    return max(end, now + timedelta(seconds=1))
