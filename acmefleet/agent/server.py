"""The agent's listener: mutual TLS, one bounded request per connection.

* **who**: TLS 1.2 or later; the client must present a certificate that chains to
  ``client_ca_file`` (the handshake fails otherwise), and, when ``client_identity`` is set,
  carries that dNSName (403 otherwise). Only then is a byte of the request read.
* **what**: ``POST /check`` with at most ``MAX_REQUEST_BYTES`` of JSON, parsed strictly
  (``validation/perspective.py``); anything else gets 4xx with one sentence saying why.
* **how much**: ``max_connections`` open connections and ``max_concurrent_checks`` running
  checks (more get 503 at once: queueing would only eat the caller's deadline); the request
  must arrive within ``request_timeout_seconds`` of the handshake, which itself has
  ``HANDSHAKE_SECONDS``; each check is held to its validator's deadline.
* **answer**: 200 with pass or the ACME problem the check found, nothing else: no address,
  no exception text (those are logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, Mapping

import h11

from acmefleet.agent.checks import CaaAgentCheck, build_caa, build_checks
from acmefleet.agent.config import AgentConfig
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.validation.base import ChallengeValidator, TxtRecordChecker
from acmefleet.validation.mpic import tls_context
from acmefleet.validation.perspective import (
    MAX_REQUEST_BYTES,
    PATH,
    BadCheckRequest,
    CaaRequest,
    TxtRequest,
    answer,
    parse_request,
)

log = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 10.0
CLOSE_SECONDS = 2.0
MAX_HEAD_BYTES = 8192
READ_SIZE = 16384
# A validator keeps its own deadline; this much later the agent ends the check anyway.
GRACE_SECONDS = 1.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    503: "Service Unavailable",
}


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _response(status: int, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _error(status: int, message: str) -> bytes:
    return _response(status, json.dumps({"error": message}).encode())


def peer_dns_names(writer: asyncio.StreamWriter) -> list[str]:
    """The dNSNames of the client certificate the handshake verified."""
    ssl_object = writer.get_extra_info("ssl_object")
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert:
        return []
    return [str(v).lower() for k, v in cert.get("subjectAltName", ()) if k == "DNS"]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """The body of one ``POST /check`` (JSON, at most MAX_REQUEST_BYTES); ``_Refused``
    with the status and reason for anything else."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            raise _Refused(400, "not an HTTP/1.1 request, or its head is too large") from None
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Request):
            _check_head(event)
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_REQUEST_BYTES:
                raise _Refused(413, f"the request is larger than {MAX_REQUEST_BYTES} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return bytes(body)
        else:  # ConnectionClosed, PAUSED: the client went away mid-request
            raise _Refused(400, "the request ended early")


def _check_head(request: h11.Request) -> None:
    if request.target != PATH.encode():
        raise _Refused(404, f"the only resource is {PATH}")
    if request.method != b"POST":
        raise _Refused(405, f"{PATH} takes POST")
    headers = {name.lower(): value for name, value in request.headers}
    media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if media != b"application/json":
        raise _Refused(415, "the request must be application/json")
    declared = headers.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise _Refused(413, f"the request is larger than {MAX_REQUEST_BYTES} bytes")


class Agent:
    """One perspective: ``checks`` by kind (default: the registry, from the agent's own
    ``[validation]``), served over mutual TLS."""

    def __init__(
        self,
        config: AgentConfig,
        checks: Mapping[str, ChallengeValidator] | None = None,
        caa: CaaAgentCheck | None = None,
    ) -> None:
        self.config = config
        self.checks = dict(checks) if checks is not None else build_checks(config.validation)
        self.caa = caa if caa is not None else build_caa(config.validation)
        self.context = tls_context(
            ssl.Purpose.CLIENT_AUTH,
            ca_file=config.client_ca_file,
            cert_file=config.cert_file,
            key_file=config.key_file,
        )
        self._connections = 0
        self._running = 0

    async def start(self) -> asyncio.Server:
        return await asyncio.start_server(
            self._serve,
            self.config.host,
            self.config.port,
            ssl=self.context,
            ssl_handshake_timeout=HANDSHAKE_SECONDS,
            ssl_shutdown_timeout=CLOSE_SECONDS,
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        try:
            writer.write(await self._respond(reader, writer))
            await asyncio.wait_for(writer.drain(), CLOSE_SECONDS)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("connection ended: %s", type(exc).__name__)
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), CLOSE_SECONDS)

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        if self._connections > self.config.max_connections:
            return _error(503, "too many connections; try again later")
        names = peer_dns_names(writer)
        wanted = self.config.client_identity
        if wanted is not None and wanted not in names:
            log.warning("refused a client certificate for %s (want %s)", names[:4], wanted)
            return _error(403, "this client certificate is not allowed here")
        seconds = self.config.request_timeout
        try:
            async with asyncio.timeout(seconds):
                body = await read_request(reader)
        except TimeoutError:
            return _error(408, f"no complete request within {seconds:g} s")
        except _Refused as refused:
            return _error(refused.status, refused.message)
        return await self._check(body, names[0] if names else "?")

    async def _check(self, body: bytes, client: str) -> bytes:
        try:
            request = parse_request(body)
        except BadCheckRequest as exc:
            return _error(400, str(exc))
        run: Callable[[], Awaitable[None]]
        if isinstance(request, TxtRequest):
            lookup = self.checks.get("dns-01")
            if not isinstance(lookup, TxtRecordChecker):
                return _error(400, "this agent has no dns-01 check for TXT lookups")
            deadline = lookup.deadline
            subject = request.name
            txt = request

            def run() -> Awaitable[None]:
                return lookup.expect_txt(txt.name, txt.value)

        elif isinstance(request, CaaRequest):
            deadline = self.caa.deadline
            subject = ("*." if request.wildcard else "") + request.name

            def run() -> Awaitable[None]:
                return self.caa.run(request)

        else:
            checker = self.checks.get(request.kind)
            if checker is None:
                kinds = sorted([*self.checks, self.caa.kind])
                return _error(400, f"unknown kind {request.kind!r}; this agent checks {kinds}")
            deadline = checker.deadline
            subject = request.identifier.value
            challenge = request

            def run() -> Awaitable[None]:
                return checker.validate(
                    challenge.identifier, challenge.token, challenge.key_authorization
                )

        if self._running >= self.config.max_concurrent_checks:
            return _error(503, "too many checks running; try again later")
        self._running += 1
        seconds = deadline.total_seconds()
        error: AcmeError | None = None
        try:
            async with asyncio.timeout(seconds + GRACE_SECONDS):
                await run()
        except AcmeError as exc:
            error = exc
        except TimeoutError:
            error = AcmeError(
                ProblemType.CONNECTION, f"the check did not finish within {seconds:g} s"
            )
        except Exception:  # a checker's bug is this perspective's failure, not a crash
            log.exception("%s check of %s failed", request.kind, subject)
            error = AcmeError(ProblemType.SERVER_INTERNAL, "the check failed unexpectedly")
        finally:
            self._running -= 1
        log.info(
            "%s %s for %s: %s",
            request.kind,
            subject,
            client,
            "pass" if error is None else f"{error.type.value}: {error.detail}",
        )
        return _response(200, answer(error))


async def run_agent(config: AgentConfig, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    agent = Agent(config)
    server = await agent.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    where = ", ".join(f"{sock.getsockname()[0]}:{sock.getsockname()[1]}" for sock in server.sockets)
    log.info(
        "validator agent listening on %s (checks: %s)",
        where,
        ", ".join([*agent.checks, agent.caa.kind]),
    )
    if ready is not None:
        ready(where)
    async with server:
        await stop.wait()
