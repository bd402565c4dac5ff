"""One server process's share of the relay: relayed orders worked against the upstream CA.

Like the validation queue (``policy.validation_queue``), the work lives in the database
(``store.upstream_orders``) and every process (worker, replica) takes part: it claims due
orders under a lease, renews the leases while it works, and looks for work when woken (a
finalize of this process, after its commit), when an order ends, and every poll interval
(work queued by the others, retries come due, leases left by a process that died; one of
this host that died is taken over at once).

An attempt resumes where the last one stopped: the upstream order's URL is written to the
database as soon as the upstream gives it, before anything else happens to it, so an
attempt after a crash, a restart or an outage continues that order (its authorizations,
its finalization, its certificate) instead of placing another. The window left is a crash
between the upstream's answer to newOrder and that write: the upstream then holds one
order nothing will finish, which it lets expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acmefleet.clock import Clock
from acmefleet.config import EndpointConfig
from acmefleet.errors import AcmeError, StoreUnavailable, unauthorized
from acmefleet.jose.b64 import b64url_decode
from acmefleet.models import Order, RelayedOrder
from acmefleet.policy import orders as order_policy
from acmefleet.policy import relay
from acmefleet.policy.lease_loop import LeaseLoop
from acmefleet.policy.upstream_windows import UpstreamWindows
from acmefleet.policy.validation_queue import died_here, new_owner
from acmefleet.store import accounts as account_store
from acmefleet.store import certificates as cert_store
from acmefleet.store import orders as order_store
from acmefleet.store import upstream_orders as relay_store
from acmefleet.store import upstream_revocations as revocation_store
from acmefleet.store.engine import Database
from acmefleet.store.upstream_revocations import PendingRevocation, upstream_of
from acmefleet.upstream.client import Order as UpstreamOrder
from acmefleet.upstream.client import TxtPublisher, UpstreamClient
from acmefleet.upstream.errors import (
    UpstreamError,
    UpstreamOrderFailed,
    UpstreamProblem,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)
DRAIN_SECONDS = 5.0
CANDIDATES = 64  # due rows read at a time
CANDIDATES_REUSED_FOR = timedelta(seconds=2)


@dataclass(frozen=True)
class _Kind:
    """One kind of work the relay claims: relayed orders, revocations to tell upstream."""

    name: str
    store: Any  # a store module with due, leased, claim, take_over, renew, release
    key: Callable[[Any], str]
    run: Callable[[Any], Awaitable[None]]
    reread: Callable[[Any, Any], Any]


class AuthorityLost(Exception):
    """The account or its authority over the order's names is gone: the order ends."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail", ""))
        self.problem = problem


class _LeaseLost(Exception):
    """Another process holds the relayed order now: this attempt stops, writing nothing."""


@dataclass(frozen=True)
class RelaySettings:
    max_concurrent: int = 8
    lease: timedelta = timedelta(seconds=60)
    poll_interval: timedelta = timedelta(seconds=1)
    # One attempt waits this long at most for the upstream's authorizations and order.
    patience: float = 120.0
    upstream_poll: float = 1.0


@dataclass
class RelayTarget:
    """An upstream CA as the relay uses it."""

    client: UpstreamClient
    publisher: TxtPublisher | None
    profile: str | None
    # Makes sure the client has its account (kept, found again or registered).
    ensure_account: Callable[[], Awaitable[None]]
    # Drops the account kept for the upstream (it does not know it any more).
    forget_account: Callable[[], None]


class RelayQueue(LeaseLoop):
    name = "relay"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        targets: Mapping[str, RelayTarget],
        settings: RelaySettings | None = None,
        owner: str | None = None,
        *,
        endpoints: Mapping[str, EndpointConfig] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.targets = targets
        # To check an order's authority again before it is placed and finalized upstream.
        self.endpoints = endpoints or {}
        self.settings = settings or RelaySettings()
        self.owner = owner or new_owner()
        self._jobs: dict[tuple[str, str], asyncio.Task[None]] = {}
        # kind -> (reusable until, due rows as read): see _candidates
        self._cached: dict[str, tuple[datetime, list[Any]]] = {}
        # Revocations first: a backlog of orders must not hold back a key compromise.
        self._kinds = (
            _Kind(
                "revocation",
                revocation_store,
                lambda r: str(r.certificate_id),
                self._revoke,
                lambda _conn, r: r,  # nothing in it that a claim can make stale but attempts
            ),
            _Kind(
                "order",
                relay_store,
                lambda r: str(r.order_id),
                self._relay,
                lambda conn, r: relay_store.get_relayed(conn, r.order_id) or r,
            ),
        )
        # The upstreams' renewal windows of relayed certificates, fetched on the same loop.
        self.windows = UpstreamWindows(
            db, clock, {name: target.client for name, target in targets.items()}
        )
        super().__init__(self.settings.lease, self.settings.poll_interval)

    async def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Claim nothing more; let running attempts finish within ``drain_seconds``, cancel
        the rest and give their leases back (another process resumes them at once)."""
        await self._halt(self._jobs.values(), drain_seconds)
        if self._jobs:
            with contextlib.suppress(StoreUnavailable), self.db.write() as conn:
                for kind in self._kinds:
                    held = [key for name, key in self._jobs if name == kind.name]
                    kind.store.release(conn, held, self.owner)
        self._jobs.clear()
        await self.windows.stop()
        for target in self.targets.values():
            await target.client.aclose()

    def _round(self) -> None:
        for kind in self._kinds:
            self._claim(kind)
        self.windows.round()

    def _claim(self, kind: _Kind) -> None:
        free = self.settings.max_concurrent - len(self._jobs)
        if free <= 0:
            return
        now = self.clock.now()
        candidates = self._candidates(kind, now, free)
        candidates = [
            (i, dead) for i, dead in candidates if (kind.name, kind.key(i)) not in self._jobs
        ]
        if not candidates:
            return
        until = now + self.settings.lease
        started: list[Any] = []
        with self.db.write() as conn:
            for item, dead in candidates:
                if len(started) == free:
                    break
                key = kind.key(item)
                if dead is None:
                    claimed = kind.store.claim(conn, key, self.owner, now, until)
                else:
                    claimed = kind.store.take_over(conn, key, dead, self.owner, until)
                    if claimed:
                        log.info("relay: took %s %s over from %s (gone)", kind.name, key, dead)
                if claimed:
                    # As it is now, under this lease: not as it was read before the claim.
                    started.append(kind.reread(conn, item))
        for item in started:  # once the claims are committed
            job = (kind.name, kind.key(item))
            self._jobs[job] = asyncio.get_running_loop().create_task(
                self._attempt(kind, item), name=f"relay-{kind.name}-{job[1]}"
            )

    def _candidates(self, kind: _Kind, now: datetime, free: int) -> list[tuple[Any, str | None]]:
        """What may be claimed: due rows (none held), and rows held by a process of this
        host that died. Orders come in the store's fair order, which ranks every due row:
        under a mass renewal that query costs (about 0.2-0.3 s at 100,000 queued rows), so
        its answer is reused for a while; a row claimed meanwhile by another process fails
        its compare-and-set claim here, nothing worse."""
        cached = self._cached.get(kind.name)
        if cached is not None and now < cached[0]:
            rows: list[tuple[Any, str | None]] = [
                (i, None) for i in cached[1] if (kind.name, kind.key(i)) not in self._jobs
            ]
            if len(rows) >= free:
                return rows
        with self.db.read() as conn:
            due = kind.store.due(conn, now, max(free * 2, CANDIDATES))
            dead = [
                (item, owner)
                for item, owner in kind.store.leased(conn, now)
                if died_here(owner, self.owner)
            ]
        if kind.name == "order":
            self._cached[kind.name] = (now + CANDIDATES_REUSED_FOR, due)
        return [(item, None) for item in due] + dead

    def _renew(self) -> None:
        if not self._jobs:
            return
        until = self.clock.now() + self.settings.lease
        lost = []
        with self.db.write() as conn:
            for kind in self._kinds:
                for name, key in list(self._jobs):
                    if name == kind.name and not kind.store.renew(conn, key, self.owner, until):
                        lost.append((name, key))
        for job in lost:
            log.warning("relay: lost the lease on %s %s", *job)
            self._jobs[job].cancel()

    async def _attempt(self, kind: _Kind, item: Any) -> None:
        job = (kind.name, kind.key(item))
        try:
            await kind.run(item)
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as unavailable:  # the lease runs out; another attempt resumes
            log.warning("relay of %s %s: %s", *job, unavailable)
        except _LeaseLost:
            log.warning("relay: lost the lease on %s %s", *job)
        except Exception:
            log.exception("relay of %s %s failed", *job)
        finally:
            if not self._stopping:
                self._jobs.pop(job, None)
                self._work_done()

    async def _revoke(self, pending: PendingRevocation) -> None:
        """Tell the upstream of a revocation made here (revokeCert by this server's account)."""
        target = self.targets.get(pending.upstream)
        try:
            if target is None:
                raise UpstreamError(f"upstream {pending.upstream} is not configured")
            await target.ensure_account()
            leaf = x509.load_pem_x509_certificates(pending.chain_pem.encode("ascii"))[0]
            der = leaf.public_bytes(Encoding.DER)
            try:
                await target.client.revoke(der, pending.reason)
            except UpstreamProblem as refused:
                if refused.acme_type != "badRevocationReason" or pending.reason == 0:
                    raise
                # Revoked it must be: a CA that takes fewer reasons (Let's Encrypt: 0, 1, 4,
                # 5) gets "unspecified"; the reason given here stays in this server's record.
                log.warning(
                    "relay: %s refused reason %d for %s; revoking it as unspecified",
                    pending.upstream,
                    pending.reason,
                    pending.serial_hex,
                )
                await target.client.revoke(der, 0)
        except (asyncio.CancelledError, StoreUnavailable, _LeaseLost):
            raise
        except Exception as exc:
            error = self._upstream_error(exc, target, pending.upstream)
            now = self.clock.now()
            problem = relay.upstream_problem(error, pending.upstream)
            if error.transient:
                due = now + relay.retry_delay(pending.attempts + 1, error.retry_after)
                with self.db.write() as conn:
                    revocation_store.reschedule(
                        conn, pending.certificate_id, self.owner, due, problem, now
                    )
                log.warning(
                    "relay: revocation of %s at %s: %s; again at %s",
                    pending.serial_hex,
                    pending.upstream,
                    error.detail,
                    due.isoformat(timespec="seconds"),
                )
                return
            with self.db.write() as conn:
                if revocation_store.finish(
                    conn, pending.certificate_id, self.owner, "failed", now, error=problem
                ):
                    relay.record_revocation(conn, pending, now, problem)
            log.error(
                "relay: the upstream %s refused to revoke %s: %s",
                pending.upstream,
                pending.serial_hex,
                error.detail,
            )
            return
        now = self.clock.now()
        with self.db.write() as conn:
            if revocation_store.finish(conn, pending.certificate_id, self.owner, "done", now):
                relay.record_revocation(conn, pending, now, None)
        log.info("relay: %s revoked at %s", pending.serial_hex, pending.upstream)

    def _upstream_error(
        self, exc: Exception, target: RelayTarget | None, upstream: str
    ) -> UpstreamError:
        """Any failure of an attempt as an ``UpstreamError``: what is not one (a bug, a
        malformed answer no check caught) is logged with its traceback and retried with the
        backoff, so it ends at ``retry_for`` like any other, never in a loop."""
        if isinstance(exc, UpstreamProblem) and exc.acme_type == "accountDoesNotExist":
            if target is not None:
                # The upstream no longer knows the account (a CA that lost its state, an
                # account deleted there): bind it again on the next attempt, soon.
                target.forget_account()
            return UpstreamUnavailable(
                f"upstream {upstream} does not know this server's account: binding it again"
            )
        if isinstance(exc, UpstreamError):
            return exc
        log.error("relay: unexpected failure with upstream %s", upstream, exc_info=exc)
        return UpstreamUnavailable(f"the relay to {upstream} failed ({type(exc).__name__})")

    async def _relay(self, relayed: RelayedOrder) -> None:
        target = self.targets.get(relayed.upstream)
        try:
            if target is None:
                raise UpstreamError(f"upstream {relayed.upstream} is not configured")
            chain, leaf, upstream = await self._through_upstream(relayed, target)
        except (asyncio.CancelledError, StoreUnavailable, _LeaseLost):
            raise
        except AuthorityLost as lost:
            with self.db.write() as conn:
                relay.fail(conn, relayed, self.owner, lost.problem, self.clock.now())
            log.warning("relay of order %s ended: %s", relayed.order_id, lost.problem["detail"])
            return
        except Exception as exc:
            self._end(relayed, self._upstream_error(exc, target, relayed.upstream))
            return
        self._complete(relayed, chain, leaf, upstream)

    def _still_allowed(self, relayed: RelayedOrder) -> Order:
        """The order, once its account and authority are checked again: between finalize
        and now (up to ``retry_for``) an administrator may have deactivated the account or
        taken a domain from its organisation. ``AuthorityLost`` if so."""
        now = self.clock.now()
        with self.db.read() as conn:
            order = order_store.get_order(conn, relayed.order_id)
            account = account_store.get_account(conn, order.account_id) if order else None
            if order is None or account is None:
                raise UpstreamError(f"order {relayed.order_id} is gone")
            if account.status != "valid":
                raise AuthorityLost(unauthorized(f"the account is {account.status}").as_problem())
            endpoint = self.endpoints.get(account.endpoint)
            if endpoint is None:
                raise AuthorityLost(unauthorized("the order's endpoint is gone").as_problem())
            try:
                order_policy.recheck_authority(conn, endpoint, account, order, now)
            except AcmeError as refused:
                raise AuthorityLost(refused.as_problem()) from None
        return order

    async def _replaces_upstream(
        self, order: Order, relayed: RelayedOrder, client: UpstreamClient
    ) -> str | None:
        """The certID to send upstream as ``replaces`` (RFC 9773 §5): the order's own when
        the certificate it replaces came from the same upstream (a relayed certificate is
        the upstream's, its certID the same there) and the upstream speaks ARI."""
        if order.replaces is None or order.replaces_certificate is None:
            return None
        with self.db.read() as conn:
            replaced = cert_store.get_certificate(conn, order.replaces_certificate)
        if replaced is None or upstream_of(replaced) != relayed.upstream:
            return None
        return order.replaces if await client.has_renewal_info() else None

    async def _new_upstream_order(
        self, order: Order, relayed: RelayedOrder, target: RelayTarget
    ) -> UpstreamOrder:
        names = [i.value for i in order.identifiers]
        replaces = await self._replaces_upstream(order, relayed, target.client)
        try:
            return await target.client.new_order(names, profile=target.profile, replaces=replaces)
        except UpstreamProblem as refused:
            if replaces is None or refused.transient:
                raise
            # The upstream will not count it as a renewal (replaced already, a field it does
            # not take, or a certificate of another account of this server's: Boulder says
            # unauthorized once the account was bound again): the certificate is wanted all
            # the same, and a host's client sends the same replaces every time.
            log.warning(
                "relay: order %s: the upstream refused replaces (%s); ordering without it",
                relayed.order_id,
                refused.detail,
            )
            return await target.client.new_order(names, profile=target.profile)

    async def _through_upstream(
        self, relayed: RelayedOrder, target: RelayTarget
    ) -> tuple[str, x509.Certificate, UpstreamOrder]:
        client, settings = target.client, self.settings
        order = self._still_allowed(relayed)
        names = [i.value for i in order.identifiers]
        await target.ensure_account()
        if relayed.upstream_order_url is None:
            upstream = await self._new_upstream_order(order, relayed, target)
            with self.db.write() as conn:
                # A CA may hand the same account its pending order for the same names again
                # (Boulder does): if another local order holds it, that one finishes it first.
                other = relay_store.holder_of(conn, upstream.url)
                if other is not None and other != relayed.order_id:
                    raise UpstreamUnavailable(
                        f"the upstream gave the order of local order {other}: waiting for it"
                    )
                placed = relay_store.record_placed(
                    conn, relayed.order_id, self.owner, upstream.url, self.clock.now()
                )
            if not placed:
                raise _LeaseLost
            log.info("relay: order %s placed upstream as %s", relayed.order_id, upstream.url)
        else:
            try:
                upstream = await client.order(relayed.upstream_order_url)
            except UpstreamProblem as problem:
                if problem.status != HTTPStatus.NOT_FOUND:
                    raise
                # The upstream has no such order (it lost it): nothing can finish it, so
                # one is placed again; the old URL is kept in the log.
                log.warning(
                    "relay: order %s: the upstream no longer has %s; placing it again",
                    relayed.order_id,
                    relayed.upstream_order_url,
                )
                with self.db.write() as conn:
                    if not relay_store.forget_placed(
                        conn, relayed.order_id, self.owner, self.clock.now()
                    ):
                        raise _LeaseLost from None
                return await self._through_upstream(
                    replace(relayed, upstream_order_url=None), target
                )
        wait = {"patience": settings.patience, "poll_interval": settings.upstream_poll}
        if upstream.status == "pending":
            await client.satisfy_dns01(upstream, target.publisher, **wait)
            upstream = await client.until_decided(
                lambda: client.order(upstream.url),
                {"ready", "processing", "valid", "invalid"},
                what="order",
                **wait,
            )
        if upstream.status == "ready":
            self._still_allowed(relayed)  # the authorizations took time: still allowed?
            upstream = await client.finalize(upstream, b64url_decode(relayed.csr))
        upstream = await client.until_decided(
            lambda: client.order(upstream.url), {"valid", "invalid"}, what="order", **wait
        )
        if upstream.status != "valid" or upstream.certificate is None:
            raise UpstreamOrderFailed(f"the upstream's order is {upstream.status}", upstream.error)
        chain = await client.certificate(upstream.certificate)
        leaf = relay.check_relayed_leaf(b64url_decode(relayed.csr), names, chain)
        return chain, leaf, upstream

    def _complete(
        self,
        relayed: RelayedOrder,
        chain: str,
        leaf: x509.Certificate,
        upstream: UpstreamOrder,
    ) -> None:
        now = self.clock.now()
        with self.db.write() as conn:
            order = order_store.get_order(conn, relayed.order_id)
            account = account_store.get_account(conn, order.account_id) if order else None
            if order is None or account is None:
                return
            done = relay.complete(
                conn,
                relayed,
                self.owner,
                order=order,
                account=account,
                endpoint=account.endpoint,
                chain_pem=chain,
                leaf=leaf,
                upstream_order_url=upstream.url,
                certificate_url=upstream.certificate or "",
                now=now,
            )
        if done:
            log.info("relay: order %s valid (upstream %s)", relayed.order_id, upstream.url)

    def _end(self, relayed: RelayedOrder, error: UpstreamError) -> None:
        now = self.clock.now()
        delay = relay.retry_delay(relayed.attempts + 1, error.retry_after)
        with self.db.write() as conn:
            if error.transient and now + delay < relayed.give_up_at:
                due = relay.retry_later(conn, relayed, self.owner, error, now)
                if due is not None:
                    log.warning(
                        "relay of order %s: %s; again at %s",
                        relayed.order_id,
                        error.detail,
                        due.isoformat(timespec="seconds"),
                    )
                return
            if relay.fail(conn, relayed, self.owner, error, now):
                log.warning("relay of order %s ended invalid: %s", relayed.order_id, error.detail)
