"""The console as one ASGI application: the REST API and, under ``/console``, the web pages."""

from __future__ import annotations

from fastapi import FastAPI

from acmefleet.console.api.app import build_api
from acmefleet.console.context import ConsoleContext
from acmefleet.console.web.app import build_web
from acmefleet.console.web.deps import PREFIX


def build_console(ctx: ConsoleContext) -> FastAPI:
    app = build_api(ctx)
    # A mounted application of its own: HTML error pages and security headers for the pages,
    # JSON errors for the API.
    app.mount(PREFIX, build_web(ctx))
    return app
