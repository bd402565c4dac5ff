"""The server's HTTPS application: the ACME front end and the console, composed.

Neither side knows of the other: requests under the console's prefixes go to the console
(with the body read, and its size limited, here, as for ACME), everything else to ACME.
The server owns the process lifecycle: the validation queue and housekeeping start at
start-up; validations drain (or give their leases back) and the database closes at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib

from acmefleet.acme.app import AcmeApp
from acmefleet.acme.http import (
    ASGIApp,
    BodyTooLarge,
    ClientDisconnected,
    Message,
    Receive,
    Response,
    Scope,
    Send,
    read_request,
    send_response,
)
from acmefleet.server.housekeeping import Retention, run_periodically

CONSOLE_PREFIXES = ("/admin/", "/console")
TOO_LARGE = b'{"error":"too_large","detail":"the request body is too large"}'


class ServerApp:
    def __init__(self, acme: AcmeApp, console: ASGIApp) -> None:
        self.acme = acme
        self.console = console
        self._housekeeping: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(CONSOLE_PREFIXES):
            await self._to_console(scope, receive, send)
        else:
            await self.acme(scope, receive, send)

    async def _to_console(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand over to the console with the body already read within the size limit."""
        try:
            request = await read_request(scope, receive)
        except BodyTooLarge:
            await send_response(send, Response(413, TOO_LARGE, "application/json"))
            return
        except ClientDisconnected:
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": request.body, "more_body": False}

        await self.console(scope, replay, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.acme.start_validations()
                self._start_housekeeping()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop_housekeeping()
                await self.acme.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_housekeeping(self) -> None:
        ctx = self.acme.ctx
        retention = Retention(ctx.config.keep_expired, ctx.config.housekeeping_interval)
        self._housekeeping = asyncio.get_running_loop().create_task(
            run_periodically(ctx.db, ctx.clock, retention, ctx.authorities), name="housekeeping"
        )

    async def _stop_housekeeping(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
