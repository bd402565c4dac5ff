"""Authorizations and challenges (RFC 8555 §7.5)."""

from __future__ import annotations

from sqlalchemy import Connection

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Response, json_response
from acmefleet.acme.signed import Signed
from acmefleet.acme.wire import authorization_object, challenge_object
from acmefleet.errors import not_found
from acmefleet.models import Authorization
from acmefleet.policy import authorizations as authorization_policy
from acmefleet.policy import challenges as challenge_policy
from acmefleet.store import orders as order_store
from acmefleet.store.engine import after_commit

RETRY_AFTER_SECONDS = "1"


def _own_authorization(conn: Connection, signed: Signed, authz_id: str) -> Authorization:
    authz = order_store.get_authorization(conn, authz_id)
    if authz is None or authz.account_id != signed.signer.id:
        raise not_found("this authorization")
    return authz


def _authz_response(ctx: AcmeContext, signed: Signed, authz: Authorization) -> Response:
    now = ctx.clock.now()
    response = json_response(authorization_object(signed.urls, authz, now))
    if authz.status(now) == "pending" and any(c.status == "processing" for c in authz.challenges):
        response.add_header("Retry-After", RETRY_AFTER_SECONDS)
    return response


def authorization(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    authz = _own_authorization(conn, signed, signed.params["id"])
    if not signed.jws.is_post_as_get:
        authz = authorization_policy.deactivate(conn, authz, signed.payload(), ctx.clock.now())
    return _authz_response(ctx, signed, authz)


def challenge(ctx: AcmeContext, conn: Connection, signed: Signed) -> Response:
    found = order_store.get_challenge(conn, signed.params["id"])
    if found is None:
        raise not_found("this challenge")
    authz = _own_authorization(conn, signed, found.authz_id)
    if not signed.jws.is_post_as_get:
        signed.payload()  # any JSON object (clients send {}) asks the server to validate
        failure_limit = ctx.config.rate_limits.failed_validations_per_account
        # Only what the endpoint offers now: a challenge type removed from its configuration
        # is not validated on an authorization created before.
        offered = {
            kind: validator
            for kind, validator in ctx.validators_for(signed.endpoint.name).items()
            if kind in signed.endpoint.challenges
        }
        if challenge_policy.start(conn, found, authz, offered, ctx.clock.now(), failure_limit):
            # Queued in this transaction (the challenge is processing); this process's
            # queue looks at once after the commit, the others on their next poll.
            after_commit(conn, ctx.queue.wake)
        refreshed = order_store.get_challenge(conn, found.id)
        assert refreshed is not None
        found = refreshed
    response = json_response(challenge_object(signed.urls, found))
    response.add_header("Link", f'<{signed.urls.authorization(authz.id)}>;rel="up"')
    if found.status == "processing":
        response.add_header("Retry-After", RETRY_AFTER_SECONDS)
    return response
