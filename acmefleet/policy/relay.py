"""Relaying a public endpoint's orders to its upstream CA: what is written when.

Finalize checks what it always checks (the CSR against the order, the authorizations, CAA),
claims the order (``processing``) and queues it here instead of signing: the host's order
stays ``processing`` while a server process works the upstream's side
(``policy.relay_queue``). That ends in one of three writes, each conditional on the worker
still holding the relayed order's lease:

* ``complete``: the upstream's chain, checked to be the certificate asked for (the CSR's
  key, exactly the order's names), stored as the order's certificate: the order is valid;
* ``retry_later``: a failure that passes (rate limits, an outage, a timeout) counted, the
  order due again after a backoff that honours the upstream's ``Retry-After``;
* ``fail``: a failure that will not pass, or the time to retry is up: the order is invalid
  with a problem whose subproblem is the upstream's own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection

from acmefleet.errors import ProblemType
from acmefleet.models import Account, Certificate, Order, RelayedOrder
from acmefleet.store import audit, renewals, upstream_windows
from acmefleet.store import certificates as cert_store
from acmefleet.store import orders as order_store
from acmefleet.store import upstream_orders as relay_store
from acmefleet.store.ids import new_id
from acmefleet.store.upstream_revocations import PendingRevocation
from acmefleet.upstream.errors import UpstreamError, UpstreamOrderFailed, UpstreamProblem

ACME_ERROR = "urn:ietf:params:acme:error:"
FIRST_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(minutes=10)
# What a client is told to wait between polls of a relayed order still processing.
POLL_AFTER = timedelta(seconds=2)


class RelayedCertificateMismatch(UpstreamError):
    """The upstream returned a certificate that is not the one asked for."""


@dataclass(frozen=True)
class RelayTo:
    """Where finalize sends an endpoint's orders: the upstream's name, how long to retry."""

    upstream: str
    retry_for: timedelta


def queue(conn: Connection, order: Order, csr: str, relay: RelayTo, now: datetime) -> RelayedOrder:
    """Hand a claimed (``processing``) order to the upstream: due at once."""
    relayed = RelayedOrder(
        order_id=order.id,
        upstream=relay.upstream,
        csr=csr,
        state="queued",
        upstream_order_url=None,
        certificate_url=None,
        attempts=0,
        next_attempt_at=now,
        give_up_at=now + relay.retry_for,
        last_error=None,
        lease_owner=None,
        lease_until=None,
        created_at=now,
    )
    relay_store.insert_relayed(conn, relayed)
    return relayed


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """Backoff after the ``attempts``-th failure (1, 2, …): doubling from 5 s to 10 min,
    never sooner than the upstream's ``Retry-After``."""
    doubling: timedelta = FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 16)
    delay = min(doubling, LONGEST_RETRY)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def upstream_problem(error: UpstreamError, upstream: str) -> dict[str, Any]:
    """The local problem for an upstream failure: the upstream's own as its subproblem."""
    if isinstance(error, UpstreamOrderFailed) and error.problem is not None:
        error = error.problem
    if isinstance(error, UpstreamProblem):
        kind = error.acme_type
        # The upstream's verdict on a name is the verdict on it here too; anything else
        # (its account, its limits, its internals) is this server's failure to issue.
        local = kind if kind in {"rejectedIdentifier", "caa", "dns", "unauthorized"} else None
        sub: dict[str, Any] = {"type": error.type, "detail": error.detail}
        subproblems = [sub]
        for item in error.subproblems:
            entry: dict[str, Any] = {"type": item.type, "detail": item.detail}
            if item.identifier:
                entry["identifier"] = {"type": "dns", "value": item.identifier}
            subproblems.append(entry)
        return {
            "type": ACME_ERROR + (local or "serverInternal"),
            "detail": f"the upstream CA {upstream} did not issue: {error.detail}",
            "status": 403 if local else 500,
            "subproblems": subproblems,
        }
    return {
        "type": ACME_ERROR + ProblemType.SERVER_INTERNAL.value,
        "detail": f"the upstream CA {upstream} did not issue: {error.detail}",
        "status": 500,
    }


def check_relayed_leaf(csr_der: bytes, names: list[str], chain_pem: str) -> x509.Certificate:
    """The chain's leaf is for the CSR's key and exactly the order's names."""
    leaf = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))[0]
    csr = x509.load_der_x509_csr(csr_der)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != csr.public_key().public_bytes(*spki):
        raise RelayedCertificateMismatch("the upstream's certificate is for another key")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise RelayedCertificateMismatch("the upstream's certificate names nothing") from None
    except ValueError:  # an extension that does not parse
        raise RelayedCertificateMismatch("the upstream's certificate does not parse") from None
    wanted = sorted(n.lower() for n in names)
    dns_names = sorted(name.lower() for name in san.get_values_for_type(x509.DNSName))
    if dns_names != wanted or any(not isinstance(entry, x509.DNSName) for entry in san):
        raise RelayedCertificateMismatch("the upstream's certificate names other names")
    common_names = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if any(str(cn.value).lower() not in wanted for cn in common_names):
        raise RelayedCertificateMismatch("the upstream's certificate has another common name")
    return leaf


def complete(
    conn: Connection,
    relayed: RelayedOrder,
    owner: str,
    *,
    order: Order,
    account: Account,
    endpoint: str,
    chain_pem: str,
    leaf: x509.Certificate,
    upstream_order_url: str,
    certificate_url: str,
    now: datetime,
) -> bool:
    """Store the upstream's certificate as the order's; False if the lease was lost."""
    if not relay_store.finish(
        conn, relayed.order_id, owner, "valid", now, certificate_url=certificate_url
    ):
        return False
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    certificate = Certificate(
        id=new_id(),
        serial_hex=format(leaf.serial_number, "x"),
        account_id=account.id,
        order_id=order.id,
        org_id=account.org_id,
        endpoint=endpoint,
        ca_level=f"upstream:{relayed.upstream}",
        profile=order.profile,
        names=[i.value for i in order.identifiers],
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        chain_pem=chain_pem,
        spki_sha256=hashlib.sha256(spki).hexdigest(),
        revoked_at=None,
        revocation_reason=None,
    )
    cert_store.insert_certificate(conn, certificate, now)
    # Its renewal window is the upstream's: fetched from now on (policy.upstream_windows).
    upstream_windows.track(conn, certificate.id, relayed.upstream, now)
    if not order_store.set_finalization(
        conn, order.id, expected="processing", finalization="valid", certificate_id=certificate.id
    ):
        raise RuntimeError(f"order {order.id} left processing while its relay held the lease")
    audit.record(
        conn,
        at=now,
        actor=f"upstream:{relayed.upstream}",
        action="certificate.issue",
        target=certificate.serial_hex,
        details={
            "names": certificate.names,
            "order": order.id,
            "endpoint": endpoint,
            "upstream": relayed.upstream,
            "upstream_order": upstream_order_url,
            "issuer": leaf.issuer.rfc4514_string()[:200],
        },
    )
    return True


def retry_later(
    conn: Connection,
    relayed: RelayedOrder,
    owner: str,
    error: UpstreamError,
    now: datetime,
) -> datetime | None:
    """Count the failed attempt; when the order is due again (None: the lease was lost)."""
    due = now + retry_delay(relayed.attempts + 1, error.retry_after)
    problem = upstream_problem(error, relayed.upstream)
    if not relay_store.reschedule(conn, relayed.order_id, owner, due, problem, now):
        return None
    return due


def fail(
    conn: Connection,
    relayed: RelayedOrder,
    owner: str,
    error: UpstreamError | dict[str, Any],
    now: datetime,
) -> bool:
    """End the order invalid with the upstream's problem (or ``error``, a problem document
    of this server's: the authority lost); False if the lease was lost."""
    problem = error if isinstance(error, dict) else upstream_problem(error, relayed.upstream)
    if not relay_store.finish(conn, relayed.order_id, owner, "invalid", now, error=problem):
        return False
    if not order_store.set_finalization(
        conn, relayed.order_id, expected="processing", finalization="invalid", error=problem
    ):
        raise RuntimeError(f"order {relayed.order_id} left processing under its relay's lease")
    renewals.release_replacement(conn, relayed.order_id)  # (if it replaced a certificate)
    audit.record(
        conn,
        at=now,
        actor=f"upstream:{relayed.upstream}",
        action="order.relay-failed",
        target=relayed.order_id,
        details={"upstream": relayed.upstream, "detail": problem["detail"][:300]},
    )
    return True


def retry_after_for(relayed: RelayedOrder | None, now: datetime) -> int:
    """Seconds a client polling a processing order should wait (RFC 8555 §7.4)."""
    if relayed is None or relayed.next_attempt_at <= now:
        return int(POLL_AFTER.total_seconds())
    return max(1, min(3600, int((relayed.next_attempt_at - now).total_seconds()) + 1))


def record_revocation(
    conn: Connection, pending: PendingRevocation, now: datetime, problem: dict[str, Any] | None
) -> None:
    """Audit what the upstream answered to the revocation of a relayed certificate."""
    audit.record(
        conn,
        at=now,
        actor=f"upstream:{pending.upstream}",
        action="certificate.upstream-revoke"
        if problem is None
        else "certificate.upstream-revoke-failed",
        target=pending.serial_hex,
        details={"upstream": pending.upstream, "reason": pending.reason}
        | ({} if problem is None else {"detail": problem["detail"][:300]}),
    )
