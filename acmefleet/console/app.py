"""The console as one ASGI application: the REST API and (later in this module) the web page."""

from __future__ import annotations

from fastapi import FastAPI

from acmefleet.acme.context import AcmeContext
from acmefleet.console.api.app import build_api


def build_console(ctx: AcmeContext) -> FastAPI:
    return build_api(ctx)
