"""Signing in with an API token and out again; the session lives in the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from acmefleet.console import sessions, tokens
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


@router.get("/login")
def login_form(request: Request, ctx: Ctx) -> Response:
    if current_viewer(request, ctx) is not None:
        return see_other("/")
    return page(request, "login.html", None, error=None)


@router.post("/login")
def login(request: Request, ctx: Ctx, token: Annotated[str, Form(max_length=200)] = "") -> Response:
    """The token is checked like the API's bearer token; it is never stored or echoed."""
    with ctx.db.read() as conn:
        principal = tokens.authenticate(conn, token) if token else None
    if principal is None:
        return page(
            request, "login.html", None, status_code=403, error="This token is unknown or revoked."
        )
    with ctx.db.write() as conn:
        session_id, _ = sessions.open_session(conn, principal, ctx.clock.now(), source(request))
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
