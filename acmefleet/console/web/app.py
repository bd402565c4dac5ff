"""The web console as an ASGI application, mounted at ``/console`` by the console app."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acmefleet.console.context import ConsoleContext
from acmefleet.console.errors import Conflict, ConsoleError, NotFound
from acmefleet.console.web import auth, credentials, inventory, organisations, overview
from acmefleet.console.web.deps import (
    PREFIX,
    SESSION_COOKIE,
    LoginRequired,
    Viewer,
    current_viewer,
)
from acmefleet.console.web.render import page
from acmefleet.errors import StoreUnavailable

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class SecurityHeaders:
    """Set the headers above on every response, including static files and error pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def _error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The error in the layout, with the navigation when signed in and a link back."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    if viewer is None and status < 500 and request.cookies.get(SESSION_COOKIE):
        viewer = current_viewer(request, request.app.state.ctx)  # e.g. a 404: no route ran
    back: str = getattr(request.state, "back", None) or (PREFIX + "/" if viewer else "")
    response = page(
        request,
        "error.html",
        viewer,
        status_code=status,
        title=title,
        message=message,
        back=back,
    )
    response.headers.update(headers or {})
    return response


async def _login_required(_: Request, __: Exception) -> Response:
    return RedirectResponse(f"{PREFIX}/login", status_code=303)


async def _console_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFound):
        return _error_page(request, 404, "Not found", str(exc))
    if isinstance(exc, Conflict):
        return _error_page(request, 409, "Not possible now", str(exc))
    return _error_page(request, 400, "Not accepted", str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    titles = {403: "Forbidden", 404: "Not found", 405: "Method not allowed"}
    detail = exc.detail if exc.status_code != 404 else "There is no such page."
    title = titles.get(exc.status_code, "Error")
    return _error_page(request, exc.status_code, title, detail, dict(exc.headers or {}))


# A number in the path that no row id can be (``deps.RowId``: 0, or beyond 64 bits).
_OUT_OF_RANGE = {"greater_than_equal", "less_than_equal"}


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("loc", ())[:1] == ("path",) and e.get("type") in _OUT_OF_RANGE for e in errors):
        return _error_page(request, 404, "Not found", "There is no such page.")
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
        for e in errors
    )
    return _error_page(request, 422, "Incomplete or invalid form", problems)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("console page %s: %s", request.url.path, exc)
    return _error_page(
        request,
        503,
        "Database unavailable",
        "The server's database is unavailable for a moment; nothing was changed. Try again.",
        {"Retry-After": str(StoreUnavailable.RETRY_AFTER_SECONDS)},
    )


async def _unexpected(request: Request, _: Exception) -> Response:
    # The server logs the traceback: the exception is raised again after this response.
    return _error_page(request, 500, "Internal error", "The server failed; see its log.")


def build_web(ctx: ConsoleContext) -> ASGIApp:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    for module in (auth, overview, organisations, credentials, inventory):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[("acmefleet.console.web", "static")]))
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ConsoleError, _console_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
    return SecurityHeaders(app)
