"""What both listeners enforce before a request reaches an application.

uvicorn (0.55, httptools) bounds neither the request head nor the time a client takes to
send it: llhttp accepts any number and size of header lines, uvicorn keeps them all, and no
timer runs on a connection until its first response is complete (``timeout_keep_alive``
covers only the wait between requests). A connection that sends nothing after its TLS
handshake, or drips a head or a body, is kept for ever. Its ``limit_concurrency`` answers
503 only once a request head has been read and counts every open connection, so idle
connections keep their slots and turn away requests on connections already open. So:

- ``LimitedHttpToolsProtocol`` (uvicorn's httptools protocol, per connection) refuses a
  connection past ``max_connections`` with 503 as soon as it is made; gives the request head
  ``header_timeout`` from the connection (or from a later request's first byte) and the body
  ``body_timeout`` from the end of the head, then closes with 408 (silently if nothing of a
  request came); answers 431 to a head past ``max_headers`` lines or ``max_header_bytes``
  bytes (counted on what the parser reports, and on the bytes fed while a head is
  incomplete, so a single endless line is cut too); drops a client that stops reading its
  response for ``idle_timeout``.
- ``EdgeLoop`` gives TLS handshakes and TLS shutdowns ``tls_handshake_timeout`` (the loop's
  default is 60 s for the handshake and 30 s for the shutdown).
- ``tls_context`` allows TLS 1.2 and 1.3 only, and for 1.2 only ECDHE with AEAD ciphers.

A refusal is written and the connection closed once the client has had time to read it:
what the client still sends is read and dropped until it closes, for ``LINGER`` seconds at
most (on plain HTTP after closing the write side), so that it reads the answer rather than
a reset.
"""

from __future__ import annotations

import asyncio
import http
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, ClassVar

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from acmefleet.config import LimitsConfig

log = logging.getLogger(__name__)

# Mozilla's "intermediate" TLS 1.2 suites without DHE: ECDHE key exchange, AEAD ciphers.
# TLS 1.3 suites are all AEAD and are not affected by this list.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)
HSTS = ("strict-transport-security", "max-age=31536000")
LINGER = 2.0
_WARN_EVERY = 10.0


def tls_context(_config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory``: its context (certificate and key), tightened."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    return context


class EdgeLoop(uvloop.Loop):
    """uvloop, with a deadline for the TLS handshake and the TLS shutdown of every server."""

    tls_timeout: ClassVar[float] = 60.0

    async def create_server(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> asyncio.AbstractServer:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self.tls_timeout)
            kwargs.setdefault("ssl_shutdown_timeout", self.tls_timeout)
        return await super().create_server(*args, **kwargs)


def edge_loop(limits: LimitsConfig) -> type[EdgeLoop]:
    """The loop class for a worker (``uvloop.run(..., loop_factory=...)``)."""
    return type("EdgeLoop", (EdgeLoop,), {"tls_timeout": limits.tls_handshake_timeout})


class _OverLimit(Exception):
    """Raised in a parser callback to stop parsing a head that is over a limit."""


class _RateLimitedWarning:
    """One log line per period for a flood, with the count it stands for."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.count = 0
        self.last = 0.0

    def __call__(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= _WARN_EVERY:
            log.warning(self.message, self.count)
            self.count = 0
            self.last = now


_too_many = _RateLimitedWarning(
    "refused %d connection(s) past limits.max_connections since the last such line"
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with connection, head, body and write limits."""

    limits: ClassVar[LimitsConfig] = LimitsConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None
        self._done = False  # answered or given up: what still arrives is dropped
        self._awaiting_head = True  # from the connection, or a request's end, to a head's end
        self._head_fed = 0  # bytes fed to the parser while a head was incomplete
        self._head_lines = 0
        self._head_bytes = 0
        self._request_begun = False

    # The connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _too_many()
            self._answer(503, "Too many connections.")
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        if self._awaiting_head:
            self._head_fed += len(data)
            self._arm_head_timer()
        super().data_received(data)
        if not self._done and self._awaiting_head and self._head_fed > self.limits.max_header_bytes:
            self._answer(431, "Request header fields too large.")

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when parsing fails, which includes our own refusals."""
        status, reason = self._refusal or (400, msg)
        self._answer(status, reason)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.idle_timeout, self._give_up)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._write_timer = _cancel(self._write_timer)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_lines = self._head_bytes = 0
        self._request_begun = True
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_fed = 0
        self._head_timer = _cancel(self._head_timer)
        super().on_headers_complete()
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_expired)

    def on_message_complete(self) -> None:
        self._body_timer = _cancel(self._body_timer)
        self._awaiting_head = True
        self._request_begun = False
        super().on_message_complete()

    # Limits

    def _count(self, nbytes: int, lines: int) -> None:
        self._head_bytes += nbytes
        self._head_lines += lines
        if self._head_lines > self.limits.max_headers:
            self._refusal = (431, "Too many header fields.")
            raise _OverLimit
        if self._head_bytes > self.limits.max_header_bytes:
            self._refusal = (431, "Request header fields too large.")
            raise _OverLimit

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and not self._done:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._done:
            return
        if self._response_running():
            # A pipelined head waits while the server answers the request before it.
            self._arm_head_timer()
            return
        if self._request_begun:
            self._answer(408, "Request timeout.")
        else:
            self._give_up()

    def _body_expired(self) -> None:
        self._body_timer = None
        if self._done:
            return
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            self._give_up()
            return
        # The application waiting for the body sees a disconnect; what it sends is dropped.
        cycle.disconnected = True
        cycle.message_event.set()
        self._answer(408, "Request timeout.")

    def _response_running(self) -> bool:
        """A request is being answered (uvicorn reads no further meanwhile)."""
        return self.cycle is not None and not self.cycle.response_complete

    # Ending the connection

    def _answer(self, status: int, reason: str) -> None:
        """Write a last response of our own and close (no application runs for it)."""
        self._done = True
        self._cancel_timers()
        body = reason.encode("ascii")
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode("ascii")]
        lines += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        lines += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        transport = self.transport
        transport.write(b"".join(lines))
        if transport.can_write_eof():
            # Plain TCP: closing with unread input would send a reset that can overtake the
            # answer, so half-close and drop the input until the client closes, or LINGER.
            transport.write_eof()
            self._write_timer = self.loop.call_later(LINGER, transport.abort)
        else:
            # TLS has no half-close under the transport, and a TLS shutdown met by more
            # application data ends in a reset that can overtake the answer too: drop the
            # input (data_received, as _done) until the client closes, or LINGER, then
            # close_notify and EdgeLoop's shutdown timeout.
            self._write_timer = self.loop.call_later(LINGER, transport.close)

    def _give_up(self) -> None:
        self._done = True
        self._cancel_timers()
        self.transport.abort()

    def _cancel_timers(self) -> None:
        self._head_timer = _cancel(self._head_timer)
        self._body_timer = _cancel(self._body_timer)
        self._write_timer = _cancel(self._write_timer)


def _cancel(timer: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancel a timer if one is set; None, for ``self._x_timer = _cancel(self._x_timer)``."""
    if timer is not None:
        timer.cancel()
    return None


def limited_protocol(limits: LimitsConfig) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for a listener, with the server's limits."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
