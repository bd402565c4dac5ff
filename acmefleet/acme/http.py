"""A minimal ASGI layer: the request and response values handlers see, and the adapter.

ACME needs little of a web framework (one body, a few headers), and every request
pays for the layer, so this is ours: about what Starlette's Request/Response give,
without their per-request work.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 256 * 1024


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    """The client went away (or was cut off) before its body was read: nothing to answer."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    client: str | None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def add_header(self, name: str, value: str) -> None:
        self.headers.append((name, value))

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for n, v in self.headers if n.lower() == lower), None)


def json_response(
    payload: Any, status: int = 200, content_type: str = "application/json"
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status=status, body=body, content_type=content_type)


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined once, in linear time."""
    values: dict[str, list[str]] = {}
    for raw_name, raw_value in raw:
        values.setdefault(raw_name.decode("latin-1").lower(), []).append(
            raw_value.decode("latin-1")
        )
    return {name: v[0] if len(v) == 1 else ", ".join(v) for name, v in values.items()}


async def read_request(scope: Scope, receive: Receive) -> Request:
    headers = _headers(scope["headers"])
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    client = scope.get("client")
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=b"".join(chunks),
        client=client[0] if client else None,
    )


async def send_response(send: Send, response: Response, *, head: bool = False) -> None:
    headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in response.headers]
    if response.content_type is not None:
        headers.append((b"content-type", response.content_type.encode("latin-1")))
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})
