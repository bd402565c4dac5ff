"""Signing in with an API token and out again; the session lives in the database.

Failed sign-ins are audited and throttled per address and overall (``login_throttle``).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from acmefleet.console import login_throttle, sessions, tokens
from acmefleet.console.web.deps import (
    PREFIX,
    SESSION_COOKIE,
    Checked,
    Ctx,
    current_viewer,
    source,
)
from acmefleet.console.web.render import page, see_other

router = APIRouter()
log = logging.getLogger(__name__)


@router.get("/login")
def login_form(request: Request, ctx: Ctx) -> Response:
    if current_viewer(request, ctx) is not None:
        return see_other("/")
    return page(request, "login.html", None, error=None)


@router.post("/login")
def login(request: Request, ctx: Ctx, token: Annotated[str, Form(max_length=200)] = "") -> Response:
    """The token is checked like the API's bearer token; it is never stored or echoed."""
    where = source(request)
    throttle = login_throttle.Throttle.of(ctx.config.limits)
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        wait = login_throttle.retry_after(conn, throttle, where, now)
        principal = tokens.authenticate(conn, token) if token and wait is None else None
    if wait is not None:
        log.info("console sign-in from %s refused: too many failed sign-ins", where)
        refused = page(
            request,
            "login.html",
            None,
            status_code=429,
            error=f"Too many failed sign-ins. Try again in {wait} seconds.",
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    if principal is None:
        with ctx.db.write() as conn:
            login_throttle.record_failure(
                conn, throttle, source=where, now=now, token_id=tokens.presented_id(token)
            )
        return page(
            request, "login.html", None, status_code=403, error="This token is unknown or revoked."
        )
    with ctx.db.write() as conn:
        login_throttle.forget_failures(conn, where)
        session_id, _ = sessions.open_session(conn, principal, now, where)
    response = see_other("/")
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        path=PREFIX,
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
def logout(request: Request, viewer: Checked, ctx: Ctx) -> Response:
    with ctx.db.write() as conn:
        sessions.close_session(conn, viewer.session_id, now=ctx.clock.now(), source=source(request))
    response = see_other("/login")
    response.delete_cookie(
        SESSION_COOKIE, path=PREFIX, secure=True, httponly=True, samesite="strict"
    )
    return response
