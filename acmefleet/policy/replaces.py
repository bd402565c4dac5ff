"""newOrder's ``replaces`` (RFC 9773 §5): which certificate an order renews.

The certificate must be one this endpoint issued to the account's organisation (a host
re-enrolled with a fresh EAB holds a new account of the same organisation), share a name
with the order, and not be replaced already: that refusal is ``alreadyReplaced`` (409),
checked at newOrder, and at finalize by marking the certificate replaced (compare and set,
``store.renewals.claim_replacement``), so two orders racing to replace one certificate
finalize once. A relayed order claims at finalize too and releases the claim if the
upstream refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from acmefleet.errors import AcmeError, ProblemType, malformed
from acmefleet.identifiers import Identifier
from acmefleet.models import Account
from acmefleet.policy.renewal_info import find_certificate, parse_cert_id
from acmefleet.store import renewals


@dataclass(frozen=True)
class Replaces:
    cert_id: str  # as the client sent it, echoed in the order object
    certificate_id: str


def check_replaces(
    conn: Connection,
    endpoint: str,
    account: Account,
    raw: Any,
    identifiers: Sequence[Identifier],
) -> Replaces | None:
    """The certificate a newOrder payload's ``replaces`` names, checked; None without one."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise malformed("'replaces' must be a certID string")
    cert = find_certificate(conn, endpoint, parse_cert_id(raw))
    # Another organisation's certificate is answered as one that does not exist.
    if cert is None or cert.org_id != account.org_id:
        raise malformed("'replaces' names no certificate this endpoint issued to you")
    if not set(cert.names) & {i.value for i in identifiers}:
        raise malformed("the order shares no identifier with the certificate it replaces")
    ensure_not_replaced(conn, cert.id)
    return Replaces(raw, cert.id)


def ensure_not_replaced(conn: Connection, certificate_id: str) -> None:
    """``alreadyReplaced`` if an order replaced the certificate."""
    if renewals.replaced_by(conn, certificate_id) is not None:
        raise _already_replaced()


def claim_replacement(conn: Connection, certificate_id: str, *, order_id: str) -> None:
    """At finalize: mark the certificate replaced by this order, or ``alreadyReplaced``."""
    if not renewals.claim_replacement(conn, certificate_id, order_id):
        raise _already_replaced()


def _already_replaced() -> AcmeError:
    return AcmeError(
        ProblemType.ALREADY_REPLACED,
        "the certificate this order replaces was already replaced by another order",
    )
