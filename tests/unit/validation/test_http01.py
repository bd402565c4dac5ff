"""The http-01 validator against real HTTP servers on 127.0.0.1 that misbehave.

Each server is an asyncio server in the test's own event loop, written at the byte level so it
can drip, send huge bodies, redirect anywhere, reset, or speak no HTTP at all. The validator
runs with a one-second deadline; time bounds are generous (deadline + 2 s): they tell a
bounded validation from an unbounded one, they are no speed benchmark.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from acmefleet.config import ConfigError, parse_config
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.validation import http01
from acmefleet.validation.http01 import MAX_BODY_BYTES, MAX_REDIRECTS, Http01Validator
from tests.support.tls_certs import make_serving_cert

DEADLINE = 1.0
BOUND = DEADLINE + 2.0
NAME = "site.test"
TOKEN = "tok3n"
KEY_AUTHORIZATION = "tok3n." + "t" * 43  # 49 bytes; the shape does not matter here
PATH = f"/.well-known/acme-challenge/{TOKEN}"
CONNECT_FAILED = "could not connect to URL or get an HTTP answer from it"

Handler = Callable[["Site", str, asyncio.StreamWriter], Awaitable[None]]


class Site:
    """An HTTP/1.1 server on 127.0.0.1: ``handler`` writes each answer, raw."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        self.sent = 0
        self.sni: list[str | None] = []
        self.port = 0

    async def __aenter__(self) -> Site:
        if self.tls is not None:
            self.tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)  # type: ignore[assignment,misc]
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines if ": " in line)
                self.requests.append((request_line.split(" ")[1], headers))
                await self.handler(self, request_line.split(" ")[1], writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.sent += len(data)


def answer(status: int, body: bytes = b"", **headers: str) -> Handler:
    async def handler(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
        extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        await site.write(writer, head.encode() + body)

    return handler


def redirect(location: str | Callable[[Site, str], str], status: int = 302) -> Handler:
    async def handler(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
        where = location(site, path) if callable(location) else location
        head = f"HTTP/1.1 {status} Moved\r\nLocation: {where}\r\nContent-Length: 0\r\n\r\n"
        await site.write(writer, head.encode())

    return handler


def validator(port: int, **kwargs: Any) -> Http01Validator:
    options: dict[str, Any] = {
        "port": port,
        "timeout": timedelta(seconds=DEADLINE),
        "allow_private": True,
        "hosts": {"*": "127.0.0.1"},
    }
    return Http01Validator(**(options | kwargs))


async def attempt(checker: Http01Validator, name: str = NAME) -> tuple[AcmeError | None, float]:
    """(the problem, or None if validated; seconds taken)."""
    started = time.monotonic()
    try:
        await checker.validate(Identifier("dns", name), TOKEN, KEY_AUTHORIZATION)
    except AcmeError as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def refused(outcome: tuple[AcmeError | None, float], kind: ProblemType) -> AcmeError:
    problem, took = outcome
    assert problem is not None, "validated, but should not have been"
    assert problem.type is kind, (problem.type, problem.detail)
    assert took < BOUND, f"took {took:.1f} s"
    return problem


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


# -- what a good server gets -------------------------------------------------------------


def test_the_key_authorization_with_trailing_whitespace_validates() -> None:
    async def test() -> None:
        body = KEY_AUTHORIZATION.encode() + b"\r\n"
        async with Site(answer(200, body)) as site:
            problem, _took = await attempt(validator(site.port))
        assert problem is None
        [(path, headers)] = site.requests
        assert path == PATH
        assert headers["Host"] == f"{NAME}:{site.port}"
        assert headers["Accept-Encoding"] == "identity"

    run(test)


def test_redirects_on_allowed_ports_are_followed() -> None:
    """Relative and absolute, 301/302/307/308, up to the limit."""

    async def test() -> None:
        async def handler(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
            hop = len(site.requests)
            if hop == 1:
                await redirect("/two", 301)(site, path, writer)
            elif hop == 2:
                await redirect(f"http://other.{NAME}:{site.port}/three?x=1", 307)(
                    site, path, writer
                )
            elif hop == 3:
                await redirect("/four", 308)(site, path, writer)
            else:
                await answer(200, KEY_AUTHORIZATION.encode())(site, path, writer)

        async with Site(handler) as site:
            problem, _took = await attempt(validator(site.port))
        assert problem is None
        assert [p for p, _h in site.requests] == [PATH, "/two", "/three?x=1", "/four"]
        assert site.requests[2][1]["Host"] == f"other.{NAME}:{site.port}"

    run(test)


def test_a_redirect_to_https_is_followed_without_checking_the_certificate(
    tmp_path: Path,
) -> None:
    """The https port is 443 in service; here the TLS site's own port stands in for it."""
    cert = make_serving_cert(tmp_path, names=("not-the-site.example",))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert.cert, cert.key)

    async def test() -> None:
        async with Site(answer(200, KEY_AUTHORIZATION.encode()), tls=tls) as secure:
            to_https = redirect(f"https://secure.{NAME}:{secure.port}{PATH}")
            async with Site(to_https) as plain:
                checker = validator(plain.port, https_port=secure.port)
                problem, _took = await attempt(checker)
        assert problem is None
        assert secure.sni == [f"secure.{NAME}"], "SNI carries the name, not the address"
        assert secure.requests[0][1]["Host"] == f"secure.{NAME}:{secure.port}"

    run(test)


# -- time: one deadline for everything ---------------------------------------------------


def test_a_dripping_body_is_cut_at_the_deadline() -> None:
    """One byte every 0.2 s: every read succeeds in time, the validation must not."""

    async def test() -> None:
        async def drip(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
            await site.write(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(50):  # 10 s if nobody stops listening
                await asyncio.sleep(0.2)
                await site.write(writer, b"x")

        async with Site(drip) as site:
            problem = refused(await attempt(validator(site.port)), ProblemType.CONNECTION)
        assert "did not finish within 1 s" in problem.detail

    run(test)


def test_dripping_headers_are_cut_at_the_deadline() -> None:
    async def test() -> None:
        async def drip(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 48:
                await site.write(writer, bytes([byte]))
                await asyncio.sleep(0.2)

        async with Site(drip) as site:
            problem = refused(await attempt(validator(site.port)), ProblemType.CONNECTION)
        assert "did not finish within 1 s" in problem.detail

    run(test)


def test_the_deadline_covers_the_whole_redirect_chain() -> None:
    """Ten hops of 0.4 s each: each within any per-request timeout, 4 s together."""

    async def test() -> None:
        async def slow_hop(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(0.4)
            await redirect(f"/hop{len(site.requests)}")(site, path, writer)

        async with Site(slow_hop) as site:
            problem = refused(await attempt(validator(site.port)), ProblemType.CONNECTION)
        assert "did not finish within 1 s" in problem.detail
        assert len(site.requests) <= 3

    run(test)


def test_the_deadline_covers_name_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow_resolve(name: str, hosts: object) -> list[Any]:
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    monkeypatch.setattr(http01, "resolve", slow_resolve)
    problem = refused(asyncio.run(attempt(validator(80))), ProblemType.CONNECTION)
    assert "did not finish within 1 s" in problem.detail


# -- size: a small cap, streamed -----------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False])
def test_a_huge_body_is_refused_after_at_most_a_few_kilobytes(declared: bool) -> None:
    """300 MB offered (with a Content-Length, or until the connection closes): refused, and
    neither the validator's memory nor the bytes the server got to send grow with it."""
    offered = 300 * 1024 * 1024
    chunk = b"0" * 65536

    async def test() -> None:
        async def huge(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
            length = f"Content-Length: {offered}\r\n" if declared else "Connection: close\r\n"
            await site.write(writer, f"HTTP/1.1 200 OK\r\n{length}\r\n".encode())
            for _ in range(offered // len(chunk)):
                await site.write(writer, chunk)

        async with Site(huge) as site:
            tracemalloc.start()
            try:
                outcome = await attempt(validator(site.port))
                _now, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            problem = refused(outcome, ProblemType.INCORRECT_RESPONSE)
            await asyncio.sleep(0.2)  # let the server notice the closed connection
        assert f"larger than {MAX_BODY_BYTES} bytes" in problem.detail
        assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
        assert site.sent < 32 * 1024 * 1024, f"the server sent {site.sent / 1e6:.1f} MB"

    run(test)


def test_a_key_authorization_padded_past_the_cap_is_refused() -> None:
    """Not truncated then matched: the right value plus whitespace beyond 128 bytes fails."""

    async def test() -> None:
        body = KEY_AUTHORIZATION.encode() + b" " * (MAX_BODY_BYTES - len(KEY_AUTHORIZATION))
        async with Site(answer(200, body + b"trailing")) as site:
            problem = refused(await attempt(validator(site.port)), ProblemType.INCORRECT_RESPONSE)
        assert "larger than" in problem.detail

    run(test)


def test_wrong_content_and_other_statuses() -> None:
    async def test() -> None:
        async with Site(answer(200, b"something else")) as site:
            problem = refused(await attempt(validator(site.port)), ProblemType.INCORRECT_RESPONSE)
        assert problem.detail == (
            f"the key authorization at http://{NAME}:{site.port}{PATH} does not match the "
            "expected value"
        )
        async with Site(answer(404, b"nope")) as site:
            problem = refused(await attempt(validator(site.port)), ProblemType.UNAUTHORIZED)
        assert "answered HTTP 404" in problem.detail
        # 303 is no redirect the BRs allow (301, 302, 307, 308): not followed.
        async with Site(redirect("/elsewhere", 303)) as site:
            problem = refused(await attempt(validator(site.port)), ProblemType.UNAUTHORIZED)
        assert "answered HTTP 303" in problem.detail and len(site.requests) == 1

    run(test)


# -- redirects: where to, and how many ---------------------------------------------------


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("http://{name}:{other}/x", "only http on port 80 and https on port 443"),
        ("https://{name}:{other}/x", "only http on port 80 and https on port 443"),
        ("http://{name}:22/x", "only http on port 80 and https on port 443"),
        ("https://{name}:80/x", "only http on port 80 and https on port 443"),
        ("ftp://{name}/x", "only http and https URLs are followed"),
        ("http://{name}:99999/x", "invalid URL"),
    ],
)
def test_redirects_elsewhere_are_refused_before_connecting(location: str, fragment: str) -> None:
    async def test() -> None:
        async with Site(answer(200, KEY_AUTHORIZATION.encode())) as other:
            target = location.format(name=f"internal.{NAME}", other=other.port)
            async with Site(redirect(target)) as site:
                problem = refused(await attempt(validator(site.port)), ProblemType.CONNECTION)
        assert fragment in problem.detail, problem.detail
        assert other.connections == 0, "the other port was not even connected to"

    run(test)


def test_at_most_ten_redirects() -> None:
    async def test() -> None:
        async with Site(redirect(lambda site, path: f"/loop{len(site.requests)}")) as site:
            problem = refused(await attempt(validator(site.port)), ProblemType.CONNECTION)
        assert problem.detail == f"more than {MAX_REDIRECTS} redirects"
        assert len(site.requests) == MAX_REDIRECTS + 1

    run(test)


# -- errors: one phrase, nothing from the network ------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _closes_at_once(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def _not_http(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
    await site.write(writer, b"SSH-2.0-OpenSSH_9.6\r\n")
    writer.close()


async def _resets_mid_body(site: Site, path: str, writer: asyncio.StreamWriter) -> None:
    await site.write(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


def _generic(problem: AcmeError, port: int) -> str:
    return problem.detail.replace(f"http://{NAME}:{port}{PATH}", "URL")


def test_connection_failures_all_read_the_same_and_reveal_nothing() -> None:
    """Closed port, immediate close, not HTTP, reset, refused address: one detail, and
    neither the address, nor the exception, nor whether something listened."""

    async def test() -> None:
        details: dict[str, str] = {}
        port = _free_port()
        details["closed port"] = _generic(
            refused(await attempt(validator(port)), ProblemType.CONNECTION), port
        )
        for label, handler in (
            ("closes at once", _closes_at_once),
            ("not http", _not_http),
            ("reset mid-body", _resets_mid_body),
        ):
            async with Site(handler) as site:
                problem = refused(await attempt(validator(site.port)), ProblemType.CONNECTION)
                details[label] = _generic(problem, site.port)
        async with Site(answer(200, KEY_AUTHORIZATION.encode())) as site:
            private = validator(site.port, allow_private=False)
            problem = refused(await attempt(private), ProblemType.CONNECTION)
            details["loopback refused"] = _generic(problem, site.port)
            assert site.connections == 0
        assert set(details.values()) == {CONNECT_FAILED}, details
        for detail in details.values():
            assert not re.search(r"127\.0\.0\.1|errno|refused|reset|timed? ?out", detail, re.I)

    run(test)


def test_a_name_that_does_not_resolve_is_a_dns_problem() -> None:
    async def test() -> None:
        checker = validator(80, hosts={})
        problem = refused(await attempt(checker, "no-such-name.invalid"), ProblemType.DNS)
        assert problem.detail == "no address found for no-such-name.invalid"

    run(test)


@pytest.mark.parametrize("seconds", [0, -1, 301])
def test_the_configured_deadline_is_positive_and_bounded(seconds: float) -> None:
    raw = {
        "server": {"base_url": "https://acme.test", "pki_base_url": "http://acme.test"},
        "endpoints": [{"name": "p", "type": "private", "ca": "private", "profiles": ["x"]}],
        "validation": {"timeout_seconds": seconds},
    }
    with pytest.raises(ConfigError, match="timeout_seconds"):
        parse_config(raw)
    with pytest.raises(ValueError, match="positive"):
        validator(80, timeout=timedelta(seconds=min(seconds, 0)))
