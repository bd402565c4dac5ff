"""newOrder, the order resource and finalize (RFC 8555 §7.4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import Connection

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Response, json_response
from acmefleet.acme.signed import Signed
from acmefleet.acme.wire import order_object
from acmefleet.config import EndpointConfig
from acmefleet.errors import not_found
from acmefleet.models import Order
from acmefleet.policy import caa as caa_policy
from acmefleet.policy import orders as order_policy
from acmefleet.policy import relay as relay_policy
from acmefleet.store import orders as order_store
from acmefleet.store import upstream_orders as relay_store
from acmefleet.store.engine import after_commit

PROBLEM_JSON = "application/problem+json"


def _order_response(
    ctx: AcmeContext,
    conn: Connection,
    signed: Signed,
    order: Order,
    status: int = 200,
) -> Response:
    now = ctx.clock.now()
    response = json_response(order_object(signed.urls, order, now), status=status)
    response.add_header("Location", signed.urls.order(order.id))
    # Only a relayed order is ever seen "processing" (a local finalize claims, signs and
    # stores in one transaction): when to ask again, from its next attempt upstream.
    if order.finalization == "processing":
        relayed = relay_store.get_relayed(conn, order.id)
        response.add_header("Retry-After", str(relay_policy.retry_after_for(relayed, now)))
    return response


def new_order(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    order = order_policy.new_order(
        conn,
        endpoint=signed.endpoint,
        account=signed.signer,
        payload=signed.payload(),
        lifetimes=ctx.lifetimes,
        profiles=ctx.profiles,
        now=ctx.clock.now(),
        limits=ctx.config.rate_limits,
        reuse=ctx.reuse,
    )
    return _order_response(ctx, conn, signed, order, status=201)


def _own_order(conn: Connection, signed: Signed) -> Order:
    order = order_store.get_order(conn, signed.params["id"])
    if order is None or order.account_id != signed.signer.id:
        raise not_found("this order")
    return order


def order(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    signed.require_post_as_get()
    return _order_response(ctx, conn, signed, _own_order(conn, signed))


def finalize_checks_caa(ctx: AcmeContext, endpoint: EndpointConfig) -> bool:
    """Whether finalize on ``endpoint`` may have CAA re-checks to run (public endpoints of a
    server that checks CAA): ``caa_policy.due`` finds none anywhere else."""
    return endpoint.type == "public" and ctx.config.validation.check_caa


def prepare_finalize(
    ctx: AcmeContext, conn: Connection, signed: Signed
) -> Callable[[], Awaitable[object]] | None:
    """The CAA re-checks finalize will need (public endpoints: names checked more than 8
    hours ago, or never), run before its write transaction."""
    current = _own_order(conn, signed)
    now = ctx.clock.now()
    if current.status(now) != "ready":
        return None
    account = signed.signer
    caa, endpoint = ctx.caa, signed.endpoint
    if caa is None:
        return None
    checks = caa_policy.due(conn, endpoint, account, current, now)
    if not checks:
        return None

    async def run() -> object:
        return await caa_policy.run(caa, endpoint, account, checks, ctx.clock)

    return run


def finalize(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    current = _own_order(conn, signed)
    outcomes = signed.prepared if isinstance(signed.prepared, list) else []
    finalized = order_policy.finalize_order(
        conn,
        endpoint=signed.endpoint,
        account=signed.signer,
        account_spki=signed.key.spki_der,
        order=current,
        payload=signed.payload(),
        issuer=ctx.issuers[signed.endpoint.ca],
        profiles=ctx.profiles,
        now=ctx.clock.now(),
        source=signed.request.client,
        caa_outcomes=outcomes,
        check_caa=ctx.config.validation.check_caa,
        relay=ctx.relay_to(signed.endpoint),
    )
    if finalized.finalization == "processing" and ctx.relay is not None:
        after_commit(conn, ctx.relay.wake)
    if finalized.finalization == "invalid" and finalized.error is not None:
        # CAA ended the order (committed): the answer is its problem (RFC 8555 §7.4), and
        # the order, fetched again, is invalid with the same error.
        response = json_response(finalized.error, 403, PROBLEM_JSON)
        response.add_header("Location", signed.urls.order(finalized.id))
        return response
    return _order_response(ctx, conn, signed, finalized)
