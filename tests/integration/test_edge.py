"""What both listeners enforce before a request reaches an application (server/edge.py).

Raw sockets against a real server on loopback, with short deadlines in its [limits]: request
heads too large or too long (431), silent, dripping and half-handshaken connections (closed,
408), dripped bodies (408), connections past the cap (503), TLS versions and suites, HSTS.
Every attack is bounded: a few sockets, at most 40 MB, a few seconds each.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Literal

import httpx
import pytest

from tests.support.acmefleet_server import AcmefleetServer, running_acmefleet

pytestmark = pytest.mark.integration

Listener = Literal["https", "pki"]
LISTENERS: list[Listener] = ["https", "pki"]
DEADLINE = 1.0  # header_seconds, body_seconds, tls_handshake_seconds of the quick server
QUICK = {
    "header_seconds": DEADLINE,
    "body_seconds": DEADLINE,
    "tls_handshake_seconds": DEADLINE,
    "idle_seconds": 2,
}
CAP = 8


def _assert_clean_log(server: AcmefleetServer) -> None:
    log = server.log_text()
    assert "Traceback" not in log, f"the server logged an unhandled error:\n{log[-4000:]}"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmefleetServer]:
    with running_acmefleet(tmp_path_factory.mktemp("edge-quick"), limits=QUICK) as server:
        yield server
    _assert_clean_log(server)


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmefleetServer]:
    limits = {"max_connections": CAP, "header_seconds": 30}
    with running_acmefleet(tmp_path_factory.mktemp("edge-capped"), limits=limits) as server:
        yield server
    _assert_clean_log(server)


def connect(server: AcmefleetServer, listener: Listener, timeout: float = 10.0) -> socket.socket:
    port = server.port if listener == "https" else server.pki_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if listener == "pki":
        return sock
    context = ssl.create_default_context(cafile=str(server.ca_bundle))
    return context.wrap_socket(sock, server_hostname="localhost")


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """What the server sends until it closes, and when it closed; fails after ``limit`` s."""
    start = time.monotonic()
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLEOFError):
        pass
    except TimeoutError:
        pytest.fail(f"still open after {limit} s (received {data[:80]!r})")
    return data, time.monotonic() - start


def status_of(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert match, f"no HTTP response: {response[:80]!r}"
    return int(match[1])


def health(server: AcmefleetServer, listener: Listener) -> tuple[int, float]:
    start = time.monotonic()
    with connect(server, listener, timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response, _ = read_until_closed(sock, 5)
    return status_of(response), time.monotonic() - start


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


# -- request heads


@pytest.mark.parametrize("listener", LISTENERS)
def test_5000_repeated_headers_get_a_fast_431_and_the_server_keeps_answering(
    quick: AcmefleetServer, listener: Listener
) -> None:
    """2,000 such headers stalled the worker for seconds, 5,000 for more than 30 s."""
    header = b"X-Repeated: " + b"a" * 8000 + b"\r\n"
    request = b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + header * 5000 + b"\r\n"
    with connect(quick, listener) as sock:
        sender = send_in_background(sock, request)
        assert health(quick, listener) == (200, pytest.approx(0, abs=2))
        response, elapsed = read_until_closed(sock, 5)
        sender.join(5)
    assert status_of(response) == 431
    assert elapsed < 5
    assert health(quick, listener)[0] == 200


def test_100_header_lines_are_served_and_101_get_431(quick: AcmefleetServer) -> None:
    for extra, expected in [(98, 200), (99, 431)]:  # plus Host and Connection
        lines = b"".join(b"X-N%d: 1\r\n" % n for n in range(extra))
        with connect(quick, "https") as sock:
            sock.sendall(
                b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                + lines
                + b"\r\n"
            )
            response, _ = read_until_closed(sock, 5)
        assert status_of(response) == expected, extra


@pytest.mark.parametrize("listener", LISTENERS)
def test_one_endless_header_line_is_cut_at_the_byte_limit(
    quick: AcmefleetServer, listener: Listener
) -> None:
    with connect(quick, listener) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Long: ")
        sender = send_in_background(sock, b"a" * (4 * 1024 * 1024))
        response, elapsed = read_until_closed(sock, 5)
        sender.join(5)
    assert status_of(response) == 431
    assert elapsed < 5


# -- deadlines


@pytest.mark.parametrize("listener", LISTENERS)
def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(
    quick: AcmefleetServer, listener: Listener
) -> None:
    with connect(quick, listener) as sock:
        response, elapsed = read_until_closed(sock, DEADLINE + 4)
    assert response == b"", "nothing of a request came: closed without an answer"
    assert DEADLINE * 0.8 < elapsed < DEADLINE + 4


@pytest.mark.parametrize("listener", LISTENERS)
def test_a_dripped_request_head_gets_408(quick: AcmefleetServer, listener: Listener) -> None:
    with connect(quick, listener) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        stop = threading.Event()

        def drip() -> None:
            with contextlib.suppress(OSError):
                while not stop.wait(0.2):
                    sock.sendall(b"X")

        threading.Thread(target=drip, daemon=True).start()
        try:
            response, elapsed = read_until_closed(sock, DEADLINE + 4)
        finally:
            stop.set()
    assert status_of(response) == 408
    assert elapsed < DEADLINE + 4


def test_a_stalled_tls_handshake_is_cut(quick: AcmefleetServer) -> None:
    """uvloop's own handshake deadline is 60 s; the server sets tls_handshake_seconds."""
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        response, elapsed = read_until_closed(sock, DEADLINE + 4)
    assert response == b""
    assert elapsed < DEADLINE + 4


def test_a_kept_alive_connection_cannot_idle_on_blank_lines(quick: AcmefleetServer) -> None:
    """uvicorn stops its keep-alive timer on any byte, and a blank line starts no request."""
    with connect(quick, "https") as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock.settimeout(5)
        assert status_of(sock.recv(65536)) == 200
        sock.sendall(b"\r\n")
        _, elapsed = read_until_closed(sock, DEADLINE + 4)
    assert elapsed < DEADLINE + 4


@pytest.mark.parametrize("listener", LISTENERS)
def test_a_dripped_body_gets_408(quick: AcmefleetServer, listener: Listener) -> None:
    path = b"/acme/private/new-account" if listener == "https" else b"/health"
    with connect(quick, listener) as sock:
        sock.sendall(
            b"POST " + path + b" HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/jose+json\r\nContent-Length: 1000\r\n\r\n{"
        )
        stop = threading.Event()

        def drip() -> None:
            with contextlib.suppress(OSError):
                while not stop.wait(0.2):
                    sock.sendall(b" ")

        threading.Thread(target=drip, daemon=True).start()
        try:
            response, elapsed = read_until_closed(sock, DEADLINE + 4)
        finally:
            stop.set()
    assert status_of(response) == 408
    assert elapsed < DEADLINE + 4
    assert health(quick, listener)[0] == 200


# -- the connection cap


@pytest.mark.parametrize("listener", LISTENERS)
def test_connections_past_the_cap_get_503_and_are_closed(
    capped: AcmefleetServer, listener: Listener
) -> None:
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(capped, listener)) for _ in range(CAP)]
        time.sleep(0.5)  # the server has seen every handshake finish
        with connect(capped, listener) as extra:
            response, elapsed = read_until_closed(extra, 5)
        assert status_of(response) == 503
        assert elapsed < 5
        assert len(held) == CAP
    deadline = time.monotonic() + 5
    while (answer := health(capped, listener))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)  # the held connections are being closed
    assert answer[0] == 200


# -- TLS and HSTS


def _client(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def _handshake(server: AcmefleetServer, context: ssl.SSLContext) -> tuple[str | None, str]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with context.wrap_socket(sock) as tls:
        cipher = tls.cipher()
        assert cipher is not None
        return tls.version(), cipher[0]


@pytest.mark.parametrize(
    "ciphers",
    [
        "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",  # CBC, SHA-1
        "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384",  # CBC
        "AES128-GCM-SHA256:AES256-GCM-SHA384",  # AEAD, but RSA key exchange
    ],
)
def test_tls12_without_ecdhe_and_aead_is_refused(quick: AcmefleetServer, ciphers: str) -> None:
    with pytest.raises(ssl.SSLError):
        _handshake(quick, _client(ssl.TLSVersion.TLSv1_2, ciphers))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls11_is_refused(quick: AcmefleetServer) -> None:
    with pytest.raises(ssl.SSLError):
        _handshake(quick, _client(ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0"))


def test_modern_clients_connect(quick: AcmefleetServer) -> None:
    assert _handshake(quick, _client(ssl.TLSVersion.MAXIMUM_SUPPORTED))[0] == "TLSv1.3"
    version, cipher = _handshake(quick, _client(ssl.TLSVersion.TLSv1_2))
    assert version == "TLSv1.2" and cipher.startswith("ECDHE-") and "GCM" in cipher
    with connect(quick, "https") as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert status_of(read_until_closed(sock, 5)[0]) == 200


def test_hsts_on_every_https_answer_and_not_on_plain_http(quick: AcmefleetServer) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(quick.ca_bundle))) as client:
        for path in [
            "/acme/private/directory",
            "/acme/nowhere",
            "/console/login",
            "/admin/api/v1/orgs",
        ]:
            response = client.get(quick.base_url + path)
            assert response.headers.get("strict-transport-security") == "max-age=31536000", path
    with connect(quick, "https") as sock:  # the listener's own refusals too
        sock.sendall(b"GET /health HTTP/1.1\r\n" + b"X-N: 1\r\n" * 200 + b"\r\n")
        assert b"strict-transport-security: max-age=31536000" in read_until_closed(sock, 5)[0]
    pki = httpx.get(f"http://127.0.0.1:{quick.pki_port}/pki/private/issuer.cer")
    assert pki.status_code == 200
    assert "strict-transport-security" not in pki.headers
