"""What every page needs: the context, the signed-in viewer, and for writes CSRF and the role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Path, Request

from acmefleet.console import sessions
from acmefleet.console.context import ConsoleContext
from acmefleet.console.tokens import Principal
from acmefleet.store.ids import MAX_ROW_ID

PREFIX = "/console"
SESSION_COOKIE = "acmefleet_session"

# A row id in a page's path. A number no row can have (0, or beyond a signed 64-bit column,
# which overflowed the database driver: a 500) names no page: the app answers 404.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login form."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of this request."""

    session_id: str
    session: sessions.Session

    @property
    def principal(self) -> Principal:
        return self.session.principal

    @property
    def actor(self) -> str:
        return self.principal.actor

    @property
    def can_write(self) -> bool:
        return self.principal.can_write

    @property
    def csrf(self) -> str:
        return self.session.csrf_token


def context(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ConsoleContext, Depends(context)]


def current_viewer(request: Request, ctx: Ctx) -> Viewer | None:
    """The viewer of the session cookie, or None (no cookie, unknown or expired session)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    with ctx.db.read() as conn:
        session = sessions.load_session(conn, session_id, ctx.clock.now())
    if session is None:
        return None
    viewer = Viewer(session_id, session)
    request.state.viewer = viewer  # the error pages show the navigation too
    return viewer


def signed_in(request: Request, ctx: Ctx) -> Viewer:
    viewer = current_viewer(request, ctx)
    if viewer is None:
        raise LoginRequired
    return viewer


SignedIn = Annotated[Viewer, Depends(signed_in)]


def csrf_checked(
    viewer: SignedIn, csrf_token: Annotated[str | None, Form(max_length=200)] = None
) -> Viewer:
    """Every form post carries the session's CSRF token (403 otherwise)."""
    if not sessions.csrf_matches(viewer.session, csrf_token):
        raise HTTPException(
            403, "The form is stale or was not sent by this console. Reload the page and try again."
        )
    return viewer


Checked = Annotated[Viewer, Depends(csrf_checked)]


def writer(viewer: Checked) -> Viewer:
    if not viewer.can_write:
        raise HTTPException(403, f"Role {viewer.principal.role} may only read.")
    return viewer


Writer = Annotated[Viewer, Depends(writer)]


def source(request: Request) -> str | None:
    return request.client.host if request.client else None


Source = Annotated[str | None, Depends(source)]


def back_to(request: Request, path: str) -> None:
    """Where the error page of this request links back to (a console path)."""
    request.state.back = PREFIX + path
