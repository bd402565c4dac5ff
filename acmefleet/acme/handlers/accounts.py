"""newAccount, the account resource, its orders list, and keyChange (RFC 8555 §7.3)."""

from __future__ import annotations

from sqlalchemy import Connection

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Response, json_response
from acmefleet.acme.signed import Signed
from acmefleet.acme.urls import EndpointUrls
from acmefleet.acme.wire import account_object
from acmefleet.errors import AcmeError, KeyInUse, unauthorized
from acmefleet.jose.keychange import parse_key_change
from acmefleet.policy import accounts as account_policy
from acmefleet.store import orders as order_store

ORDERS_PAGE_SIZE = 100


def new_account(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    result = account_policy.new_account(
        conn,
        endpoint=signed.endpoint,
        key=signed.key,
        payload=signed.payload(),
        outer_url=signed.jws.url,
        now=ctx.clock.now(),
        source=signed.request.client,
        limits=ctx.config.rate_limits,
    )
    response = json_response(
        account_object(signed.urls, result.account), status=201 if result.created else 200
    )
    response.add_header("Location", signed.urls.account(result.account.id))
    return response


def _own_account(signed: Signed) -> None:
    if signed.params["id"] != signed.signer.id:
        raise unauthorized("the request is signed by another account")


def account(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    _own_account(signed)
    current = signed.signer
    if not signed.jws.is_post_as_get:
        current = account_policy.update_account(conn, current, signed.payload(), ctx.clock.now())
    return json_response(account_object(signed.urls, current))


def account_orders(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    _own_account(signed)
    signed.require_post_as_get()
    after = _cursor(signed.request.query)
    ids = order_store.list_order_ids(
        conn, signed.signer.id, after=after, limit=ORDERS_PAGE_SIZE + 1
    )
    page, more = ids[:ORDERS_PAGE_SIZE], len(ids) > ORDERS_PAGE_SIZE
    response = json_response({"orders": [signed.urls.order(i) for i in page]})
    if more:
        next_url = f"{signed.urls.account_orders(signed.signer.id)}?cursor={page[-1]}"
        response.add_header("Link", f'<{next_url}>;rel="next"')
    return response


def _cursor(query: str) -> str | None:
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "cursor" and value:
            return value
    return None


def key_change(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    """§7.3.5: jose checks the inner JWS, policy the account's state; this renders."""
    change = parse_key_change(
        signed.payload(),
        outer_url=signed.jws.url,
        account_url=signed.urls.account(signed.signer.id),
        keys=ctx.keys,
    )
    try:
        updated = account_policy.change_key(conn, signed.signer, change.new_key, change.old_key)
    except KeyInUse as exc:
        raise key_in_use_error(exc, signed.urls) from exc
    return json_response(account_object(signed.urls, updated))


def key_in_use_error(exc: KeyInUse, urls: EndpointUrls) -> AcmeError:
    """The 409 answer for ``exc``, with the holder's account URL as Location (§7.3.5)."""
    return AcmeError(
        exc.type,
        exc.detail,
        status=exc.status,
        headers={"Location": urls.account(exc.holder_id)},
    )
