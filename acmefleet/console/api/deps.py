"""What every API route needs: the server context, the caller, a read transaction.

A route that writes opens its transaction in its own body (``with ctx.db.write() as conn``),
never through a dependency: FastAPI runs a synchronous ``yield`` dependency's start, the
route and the dependency's end as three thread-pool calls, each scheduled from the event
loop, so a write transaction held by a dependency would keep SQLite's write lock across
turns of the loop. A signed ACME request, which writes synchronously on that same loop,
would then wait for the lock (up to the busy timeout) while keeping the loop from scheduling
the COMMIT that frees it: "database is locked" after 10 s. Read transactions do not block
writers (WAL), so they stay a dependency.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy import Connection

from acmefleet.console import tokens
from acmefleet.console.context import ConsoleContext
from acmefleet.console.operations import ConsoleOperations
from acmefleet.console.tokens import Principal
from acmefleet.store.ids import MAX_ROW_ID


def context(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ConsoleContext, Depends(context)]


def caller(request: Request, ctx: Ctx) -> Principal:
    """The principal of the ``Authorization: Bearer`` token (401 otherwise)."""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise HTTPException(
            401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    with ctx.db.read() as conn:
        principal = tokens.authenticate(conn, presented)
    if principal is None:
        raise HTTPException(
            401, "the token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal


Caller = Annotated[Principal, Depends(caller)]


def admin(principal: Caller) -> Principal:
    if not principal.can_write:
        raise HTTPException(403, f"role {principal.role} may only read")
    return principal


Admin = Annotated[Principal, Depends(admin)]


def reading(ctx: Ctx) -> Iterator[Connection]:
    with ctx.db.read() as conn:
        yield conn


# scope="function": the read transaction ends before the response is sent, not after it.
ReadConn = Annotated[Connection, Depends(reading, scope="function")]


def source(request: Request) -> str | None:
    return request.client.host if request.client else None


Source = Annotated[str | None, Depends(source)]


def reader_operations(who: Caller, ctx: Ctx) -> ConsoleOperations:
    return ConsoleOperations(ctx, who.actor)


def admin_operations(who: Admin, ctx: Ctx, src: Source) -> ConsoleOperations:
    return ConsoleOperations(ctx, who.actor, src)


# The operations of the calling token: any role may read, only ``admin`` may change.
Reader = Annotated[ConsoleOperations, Depends(reader_operations)]
Writer = Annotated[ConsoleOperations, Depends(admin_operations)]

# Row ids are positive and fit a signed 64-bit column (SQLite INTEGER, PostgreSQL bigint):
# a larger number is refused here rather than overflowing the database driver (a 500).
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
