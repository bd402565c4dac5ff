"""The FastAPI application: routers under /admin/api/v1 and errors as JSON."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from acmefleet import __version__
from acmefleet.console.api import credentials, inventory, meta, organisations
from acmefleet.console.context import ConsoleContext
from acmefleet.console.errors import Conflict, ConsoleError, NotFound
from acmefleet.errors import StoreUnavailable

API_PREFIX = "/admin/api/v1"
log = logging.getLogger(__name__)


def _error(
    status: int, code: str, detail: object, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return _error(404, "not_found", str(exc))


async def _console_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, Conflict):
        return _error(409, "conflict", str(exc))
    return _error(400, "invalid", str(exc))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
    return _error(
        exc.status_code,
        codes.get(exc.status_code, "error"),
        exc.detail,
        dict(exc.headers) if exc.headers else None,
    )


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("console API %s %s: %s", request.method, request.url.path, exc)
    return _error(
        503,
        "unavailable",
        "the server's database is unavailable for a moment; nothing was changed, retry",
        {"Retry-After": str(StoreUnavailable.RETRY_AFTER_SECONDS)},
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in the console API", exc_info=exc)
    return _error(500, "internal", "internal error; it has been logged")


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
    return _error(422, "invalid_request", problems)


def build_api(ctx: ConsoleContext) -> FastAPI:
    app = FastAPI(
        title="acmefleet console API",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        description="Organisations, domains and their validation, EAB credentials, ACME "
        "accounts and certificates. Authenticate with `Authorization: Bearer <token>`; "
        "tokens with role `auditor` may only read.",
    )
    app.state.ctx = ctx
    for router in (meta.router, organisations.router, credentials.router, inventory.router):
        app.include_router(router, prefix=API_PREFIX)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(ConsoleError, _console_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
    return app
