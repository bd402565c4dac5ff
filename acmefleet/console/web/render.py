"""Templates and the helpers that turn service-layer objects into pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from acmefleet.ca.crl import REASON_FLAGS, REVOCATION_REASONS_ACCEPTED
from acmefleet.console.web.deps import PREFIX, Viewer

TEMPLATES = Path(__file__).with_name("templates")

# The reasons the console (like ACME revokeCert) accepts, by their RFC 5280 names.
REVOCATION_REASONS = {
    code: REASON_FLAGS[code].value for code in sorted(REVOCATION_REASONS_ACCEPTED)
}


def when(value: str | None) -> str:
    """``2025-01-02T03:04:05Z`` (the views' format) as ``2025-01-02 03:04 UTC``."""
    if not value:
        return "—"
    return f"{value[:10]} {value[11:16]} UTC"


def day(value: str | None) -> str:
    return value[:10] if value else "—"


def as_json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, separators=(", ", ": "))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=when, day=day, as_json=as_json)
    env.globals.update(prefix=PREFIX, reasons=REVOCATION_REASONS)
    return env


templates = Jinja2Templates(env=_environment())


def page(
    request: Request,
    name: str,
    viewer: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page in the base layout; ``viewer`` (None on the login page) drives the navigation."""
    return templates.TemplateResponse(
        request, name, {"viewer": viewer, **context}, status_code=status_code
    )


def see_other(path: str) -> RedirectResponse:
    """Post/redirect/get: the browser loads ``path`` (a console path, never with secrets)."""
    return RedirectResponse(PREFIX + path, status_code=303)
