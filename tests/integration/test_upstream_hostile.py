"""The upstream CA's client (acmefleet/upstream/client.py) against a hostile upstream: a real
HTTPS server on loopback (http.server in a thread, TLS from a throw-away CA) whose behaviour
is chosen by the first segment of the directory URL's path (``/CASE/directory``).

What is shown: every answer RFC 8555 does not allow is a fast, precise refusal, never a hang
nor a fetch somewhere else. URLs leaving the directory's origin (another port, host, scheme,
or user info) are refused before they are requested; a redirect is refused and its target
never requested; a body larger than the limit is cut off; a server dripping one byte at a
time is given up at the client's deadline; Retry-After is read as whole seconds, capped, and
anything else ignored; a problem's texts are printable and bounded; badNonce is retried a
fixed number of times with the fresh nonce each answer carried; 5xx without a problem is
transient, 4xx without one a protocol error; a certificate that is not PEM is refused.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from acmefleet.jose.b64 import b64url_decode
from acmefleet.upstream.account_key import load_account_key
from acmefleet.upstream.client import MAX_BODY, MAX_RETRY_AFTER, NONCE_RETRIES, UpstreamClient
from acmefleet.upstream.errors import (
    MAX_TEXT,
    UpstreamError,
    UpstreamProblem,
    UpstreamProtocolError,
    UpstreamUnavailable,
)
from acmefleet.upstream.signing import AccountSigner
from tests.support.tls_certs import ServingCert, make_serving_cert

pytestmark = pytest.mark.integration

ACME = "urn:ietf:params:acme:error:"
BIG = 2 * 1024 * 1024
DRIP_INTERVAL = 0.3
FAST = 5.0  # seconds: a bound on a hang, not a performance figure
RETRY_AFTER = {
    "retry-120": "120",
    "retry-11-digits": "99999999999",
    "retry-date": "Wed, 21 Oct 2015 07:28:00 GMT",
    "retry-capped": "9999999999",
    "retry-negative": "-5",
    "retry-fraction": "1.5",
}
NOISY_DETAIL = "line one\nline two\x1b[31m red \x00\x07\u202e" + "x" * 10_000
PEM_TEXT = "this is not a certificate\n"
BOMB_SIZE = 1 << 30  # what the bomb's 13 KB decode to, in one piece
HEADROOM = 512 << 20  # the address space the client process may add while it runs

T = TypeVar("T")


class HostileUpstream(ThreadingHTTPServer):
    """A TLS server on 127.0.0.1 counting every request by method and path."""

    daemon_threads = True

    def __init__(self, cert: ServingCert) -> None:
        super().__init__(("127.0.0.1", 0), HostileHandler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert.cert, cert.key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.port: int = self.server_address[1]
        self.origin = f"https://127.0.0.1:{self.port}"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.nonces_used: dict[str, list[str]] = {}
        self.nonces_given: dict[str, list[str]] = {}
        self.serial = 0
        self.valid_pem = cert.cert.read_text()
        self._bomb: bytes | None = None

    def bomb(self) -> bytes:
        """``BOMB_SIZE`` zeros, gzipped twice: about 13 KB (made on first use, in ~1 s)."""
        with self.lock:
            if self._bomb is None:
                inner = zlib.compressobj(1, zlib.DEFLATED, 31)
                block = bytes(1 << 24)
                layer = b"".join(inner.compress(block) for _ in range(BOMB_SIZE // len(block)))
                layer += inner.flush()
                outer = zlib.compressobj(9, zlib.DEFLATED, 31)
                self._bomb = outer.compress(layer) + outer.flush()
            return self._bomb

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (the point of most cases here) is no error to print."""

    def fresh_nonce(self, case: str) -> str:
        with self.lock:
            self.serial += 1
            nonce = f"nonce-{case}-{self.serial:06d}"
            self.nonces_given.setdefault(case, []).append(nonce)
            return nonce

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return self.counts[(method, path)]

    def url(self, case: str, endpoint: str = "directory") -> str:
        return f"{self.origin}/{case}/{endpoint}"


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileUpstream

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows what matters."""

    # ------------------------------------------------------------------ helpers

    def _answer(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._answer(status, json.dumps(value).encode(), "application/json", headers)

    def _problem(
        self, status: int, type_: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        body = {"type": type_, "detail": detail, "status": status}
        self._answer(status, json.dumps(body).encode(), "application/problem+json", headers)

    def _case(self) -> tuple[str, str]:
        parts = self.path.split("?")[0].strip("/").split("/")
        with self.server.lock:
            self.server.counts[(self.command, self.path)] += 1
        return (parts[0], parts[1]) if len(parts) == 2 else ("", "")

    def _directory(self, case: str) -> dict[str, Any]:
        origin, port = self.server.origin, self.server.port
        directory: dict[str, Any] = {
            name: f"{origin}/{case}/{endpoint}"
            for name, endpoint in (
                ("newNonce", "nonce"),
                ("newAccount", "account"),
                ("newOrder", "order"),
            )
        }
        if case == "nonce-port":
            directory["newNonce"] = f"https://127.0.0.1:1/{case}/nonce"
        elif case == "nonce-http":
            directory["newNonce"] = f"http://127.0.0.1:{port}/{case}/nonce"
        elif case == "nonce-userinfo":
            directory["newNonce"] = f"https://user:secret@127.0.0.1:{port}/{case}/nonce"
        elif case == "account-host":  # the same server by another name (in its certificate)
            directory["newAccount"] = f"https://localhost:{port}/{case}/account"
        elif case == "order-missing":
            del directory["newOrder"]
        if case.startswith("ari-"):
            directory["renewalInfo"] = f"{origin}/{case}/ari"
        if case == "ari-elsewhere":
            directory["renewalInfo"] = f"https://127.0.0.1:1/{case}/ari"
        return directory

    def _drip(self, data: bytes) -> None:
        """One byte every DRIP_INTERVAL until the client hangs up (or the module ends)."""
        for index in range(len(data)):
            if self.server.stop.wait(DRIP_INTERVAL):
                return
            try:
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
            except OSError:
                return
        self.close_connection = True

    def _big(self, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(BIG))
        self.end_headers()
        self.close_connection = True
        piece = b" " * 65536
        try:
            for _ in range(BIG // len(piece)):
                if chunked:
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                else:
                    self.wfile.write(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            return

    # ------------------------------------------------------------------ methods

    def _renewal_info(self, case: str) -> None:
        window: Any = {"start": "2027-01-01T00:00:00Z", "end": "2027-01-02T00:00:00Z"}
        if case == "ari-backwards":
            window = {"start": "2027-01-02T00:00:00Z", "end": "2027-01-01T00:00:00Z"}
        elif case == "ari-prose":
            window = {"start": "next tuesday", "end": "2027-01-01T00:00:00Z"}
        elif case == "ari-no-date":
            window = {"start": "2027-02-30T00:00:00Z", "end": "2027-03-01T00:00:00Z"}
        elif case == "ari-overflow":  # a valid RFC 3339 time no UTC datetime can hold
            window = {"start": "9999-12-31T23:59:59-01:00", "end": "9999-12-31T23:59:59Z"}
        elif case == "ari-far":
            window = {"start": "9500-01-01T00:00:00Z", "end": "9500-01-02T00:00:00Z"}
        elif case == "ari-no-window":
            window = None
        elif case == "ari-redirect":
            target = f"{self.server.origin}/redirect/target"
            self._answer(302, b"", "text/plain", {"Location": target})
            return
        body = {} if window is None else {"suggestedWindow": window}
        self._json(200, body, {"Retry-After": "120"})

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[1] == "ari":
            with self.server.lock:
                self.server.counts[("GET", self.path)] += 1
            self._renewal_info(parts[0])
            return
        case, endpoint = self._case()
        if endpoint != "directory":
            self._answer(404, b"not here", "text/plain")
        elif case == "redirect":
            target = f"{self.server.origin}/redirect/target"
            self._answer(302, b"", "text/plain", {"Location": target})
        elif case in ("big", "big-chunked"):
            self._big(chunked=case == "big-chunked")
        elif case == "drip-body":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self._drip(b"{" + b" " * 10**6)
        elif case == "drip-head":
            self.close_connection = True
            self._drip(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10**6)
        elif case == "status-500":
            self._answer(500, b"Internal Server Error", "text/plain")
        elif case == "status-503":
            self._answer(503, b"<h1>down</h1>", "text/html", {"Retry-After": "30"})
        elif case == "status-400-html":
            self._answer(400, b"<html><body>Bad Request</body></html>", "text/html")
        elif case == "not-json":
            self._answer(200, b"<html>directory</html>", "text/html")
        elif case == "json-array":
            self._json(200, [self._directory(case)])
        elif case == "gzip-bomb":  # compressed though the client asked for identity
            headers = {"Content-Encoding": "gzip, gzip"}
            self._answer(200, self.server.bomb(), "application/json", headers)
        else:
            self._json(200, self._directory(case))

    def do_HEAD(self) -> None:
        case, endpoint = self._case()
        if endpoint != "nonce":
            self._answer(404, b"", "text/plain")
            return
        self._answer(200, b"", "text/plain", {"Replay-Nonce": self.server.fresh_nonce(case)})

    def do_POST(self) -> None:
        case, endpoint = self._case()
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length)) if length else {}
        protected = json.loads(b64url_decode(body["protected"])) if body else {}
        with self.server.lock:
            self.server.nonces_used.setdefault(case, []).append(str(protected.get("nonce")))
        fresh = {"Replay-Nonce": self.server.fresh_nonce(case)}
        if endpoint == "account":
            self._account(case, fresh)
        elif endpoint == "cert":
            self._certificate(case, fresh)
        else:
            self._problem(404, f"{ACME}malformed", "no such resource", fresh)

    def _account(self, case: str, fresh: dict[str, str]) -> None:
        origin = self.server.origin
        if case in RETRY_AFTER:
            headers = {**fresh, "Retry-After": RETRY_AFTER[case]}
            self._problem(429, f"{ACME}rateLimited", "too many new accounts", headers)
        elif case == "noisy":
            body = {
                "type": f"{ACME}unauthorized\n\x1b[0m" + "t" * 500,
                "detail": NOISY_DETAIL,
                "status": 403,
                "subproblems": [
                    {
                        "type": f"{ACME}caa",
                        "detail": NOISY_DETAIL,
                        "identifier": {"type": "dns", "value": "a\nb\x1b" + "n" * 1000},
                    }
                ]
                * 50,
            }
            self._answer(403, json.dumps(body).encode(), "application/problem+json", fresh)
        elif case == "badnonce":
            self._problem(400, f"{ACME}badNonce", "that nonce was used", fresh)
        elif case == "redirect-post":
            self._answer(307, b"", "text/plain", {**fresh, "Location": f"{origin}/redirect/target"})
        elif case == "account-elsewhere":
            self._json(201, {"status": "valid"}, {**fresh, "Location": "http://127.0.0.1:1/a"})
        else:
            self._json(201, {"status": "valid"}, {**fresh, "Location": f"{origin}/acct/1"})

    def _certificate(self, case: str, fresh: dict[str, str]) -> None:
        chain = "application/pem-certificate-chain"
        if case == "cert-text":
            self._answer(200, PEM_TEXT.encode(), chain, fresh)
        elif case == "cert-binary":
            self._answer(200, b"\x30\x82\x01\x0a\xff\xfe" * 50, chain, fresh)
        elif case == "cert-empty":
            self._answer(200, b"", chain, fresh)
        elif case == "cert-broken-pem":
            broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            self._answer(200, broken.encode(), chain, fresh)
        else:
            self._answer(200, self.server.valid_pem.encode(), chain, fresh)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ServingCert:
    return make_serving_cert(tmp_path_factory.mktemp("hostile-tls"), prefix="hostile")


@pytest.fixture(scope="module")
def upstream(tls: ServingCert) -> Iterator[HostileUpstream]:
    server = HostileUpstream(tls)
    thread = threading.Thread(target=server.serve_forever, name="hostile-upstream", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> AccountSigner:
    return load_account_key(tmp_path_factory.mktemp("hostile-key") / "k", create=True)


@pytest.fixture
def client_for(
    upstream: HostileUpstream, tls: ServingCert, signer: AccountSigner
) -> Callable[..., UpstreamClient]:
    def make(case: str, *, timeout: float = 5.0, account: bool = False) -> UpstreamClient:
        return UpstreamClient(
            upstream.url(case),
            signer,
            verify=ssl.create_default_context(cafile=str(tls.ca_bundle)),
            timeout=timeout,
            account_url=f"{upstream.origin}/acct/1" if account else None,
        )

    return make


def _run(client: UpstreamClient, call: Callable[[UpstreamClient], Awaitable[T]]) -> tuple[T, float]:
    """``call(client)`` in a fresh event loop, the client closed after; (result, seconds)."""

    async def go() -> T:
        async with client:
            return await call(client)

    started = time.monotonic()
    result = asyncio.run(go())
    return result, time.monotonic() - started


def _refused(
    client: UpstreamClient,
    call: Callable[[UpstreamClient], Awaitable[Any]],
    kind: type[UpstreamError],
    match: str,
) -> tuple[UpstreamError, float]:
    """The error ``call`` raises, checked to be ``kind`` matching ``match``, and how long
    it took (each refusal here is checked to be quick)."""
    started = time.monotonic()
    with pytest.raises(kind, match=match) as caught:
        _run(client, call)
    elapsed = time.monotonic() - started
    assert elapsed < FAST, f"{elapsed:.1f} s to refuse"
    return caught.value, elapsed


def _directory(client: UpstreamClient) -> Awaitable[dict[str, Any]]:
    return client.directory()


def _register(client: UpstreamClient) -> Awaitable[str]:
    return client.register(contact=["mailto:pki@example.org"])


# ---------------------------------------------------------------------- controls


def test_a_well_behaved_answer_is_taken(
    upstream: HostileUpstream, client_for: Callable[..., UpstreamClient]
) -> None:
    url, _ = _run(client_for("good"), _register)
    assert url == f"{upstream.origin}/acct/1"
    assert upstream.count("HEAD", "/good/nonce") >= 1
    pem, _ = _run(
        client_for("good", account=True), lambda c: c.certificate(upstream.url("good", "cert"))
    )
    assert pem == upstream.valid_pem


# ---------------------------------------------------------------------- (a) one origin


@pytest.mark.parametrize(
    ("case", "what"),
    [
        ("nonce-port", "newNonce"),  # https://127.0.0.1:1/
        ("nonce-http", "newNonce"),  # http:// on the same host and port
        ("nonce-userinfo", "newNonce"),  # https://user:secret@ the same origin
        ("account-host", "newAccount"),  # https://localhost: the same server, another host
    ],
)
def test_a_directory_url_leaving_the_origin_is_refused_unrequested(
    upstream: HostileUpstream,
    client_for: Callable[..., UpstreamClient],
    case: str,
    what: str,
) -> None:
    error, _ = _refused(
        client_for(case),
        _register,
        UpstreamProtocolError,
        rf"^the upstream's {what} URL leaves the directory's origin: refused$",
    )
    assert not error.transient
    assert "secret" not in str(error)
    assert upstream.count("HEAD", f"/{case}/nonce") == 0
    assert upstream.count("POST", f"/{case}/account") == 0


def test_an_account_location_leaving_the_origin_is_refused(
    client_for: Callable[..., UpstreamClient],
) -> None:
    _refused(
        client_for("account-elsewhere"),
        _register,
        UpstreamProtocolError,
        "the upstream's account URL leaves the directory's origin",
    )


def test_a_url_the_caller_got_elsewhere_is_refused_before_it_is_fetched(
    upstream: HostileUpstream, client_for: Callable[..., UpstreamClient]
) -> None:
    # An order URL from a stored row that does not belong to this upstream's origin.
    elsewhere = f"https://localhost:{upstream.port}/good/cert"
    before = upstream.count("POST", "/good/cert")
    _refused(
        client_for("good", account=True),
        lambda c: c.certificate(elsewhere),
        UpstreamProtocolError,
        "certificate URL leaves the directory's origin",
    )
    assert upstream.count("POST", "/good/cert") == before


def test_a_directory_lacking_an_entry_is_refused(client_for: Callable[..., UpstreamClient]) -> None:
    _refused(
        client_for("order-missing"),
        _directory,
        UpstreamProtocolError,
        "the upstream's newOrder URL is missing",
    )


def test_a_directory_url_with_user_info_is_not_accepted(
    upstream: HostileUpstream, signer: AccountSigner
) -> None:
    with pytest.raises(ValueError, match="must be https://HOST"):
        UpstreamClient(f"https://user:pw@127.0.0.1:{upstream.port}/good/directory", signer)
    with pytest.raises(ValueError, match="must be https://HOST"):
        UpstreamClient(f"http://127.0.0.1:{upstream.port}/good/directory", signer)


# ---------------------------------------------------------------------- (b) redirects


def test_a_redirect_is_refused_and_its_target_never_requested(
    upstream: HostileUpstream, client_for: Callable[..., UpstreamClient]
) -> None:
    error, _ = _refused(
        client_for("redirect"), _directory, UpstreamProtocolError, r"redirected \(302\)"
    )
    assert not error.transient
    assert upstream.count("GET", "/redirect/directory") == 1
    assert upstream.count("GET", "/redirect/target") == 0


def test_a_redirected_post_is_refused_and_not_sent_again(
    upstream: HostileUpstream, client_for: Callable[..., UpstreamClient]
) -> None:
    _refused(client_for("redirect-post"), _register, UpstreamProtocolError, r"redirected \(307\)")
    assert upstream.count("POST", "/redirect-post/account") == 1
    assert upstream.count("POST", "/redirect/target") == 0
    assert upstream.count("GET", "/redirect/target") == 0


# ---------------------------------------------------------------------- (c) size


@pytest.mark.parametrize("case", ["big", "big-chunked"])
def test_a_body_larger_than_the_limit_is_cut_off(
    client_for: Callable[..., UpstreamClient], case: str
) -> None:
    error, _ = _refused(
        client_for(case), _directory, UpstreamProtocolError, f"larger than {MAX_BODY} bytes"
    )
    assert not error.transient


# ---------------------------------------------------------------------- (d) slow drip


@pytest.mark.parametrize("case", ["drip-body", "drip-head"])
def test_a_server_dripping_bytes_is_given_up_at_the_deadline(
    client_for: Callable[..., UpstreamClient], case: str
) -> None:
    # Each byte comes well within any per-read timeout: only a whole-request deadline ends it.
    error, elapsed = _refused(
        client_for(case, timeout=1.5),
        _directory,
        UpstreamUnavailable,
        r"no answer from the upstream within 1\.5 s",
    )
    assert error.transient
    assert elapsed >= 1.4


# ---------------------------------------------------------------------- (e) Retry-After


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("retry-120", 120.0),
        ("retry-11-digits", None),
        ("retry-date", None),
        ("retry-capped", MAX_RETRY_AFTER),
        ("retry-negative", None),
        ("retry-fraction", None),
    ],
)
def test_a_rate_limit_is_transient_with_its_retry_after_read_safely(
    client_for: Callable[..., UpstreamClient], case: str, expected: float | None
) -> None:
    error, _ = _refused(client_for(case), _register, UpstreamProblem, "rateLimited")
    assert isinstance(error, UpstreamProblem)
    assert (error.acme_type, error.status, error.transient) == ("rateLimited", 429, True)
    assert error.retry_after == expected
    assert MAX_RETRY_AFTER == 86400


# ---------------------------------------------------------------------- (f) texts


def test_a_problems_texts_are_printable_and_bounded(
    client_for: Callable[..., UpstreamClient],
) -> None:
    error, _ = _refused(client_for("noisy"), _register, UpstreamProblem, "unauthorized")
    assert isinstance(error, UpstreamProblem)
    texts = [str(error), error.detail, error.type]
    texts += [t for sub in error.subproblems for t in (sub.type, sub.detail, sub.identifier or "")]
    for text in texts:
        assert text.isprintable(), repr(text[:80])
        assert "\x1b" not in text and "\n" not in text
    assert len(str(error)) <= MAX_TEXT
    assert len(error.detail) <= MAX_TEXT
    assert len(error.type) <= 120
    assert str(error).startswith(f"{ACME}unauthorized??[0m")
    assert error.detail.startswith("line one?line two?[31m red ???")
    assert len(error.subproblems) == 20
    assert all(len(sub.identifier or "") <= 255 for sub in error.subproblems)
    assert not error.transient


# ---------------------------------------------------------------------- (g) badNonce


def test_bad_nonce_forever_is_given_up_after_a_fixed_number_of_posts(
    upstream: HostileUpstream, client_for: Callable[..., UpstreamClient]
) -> None:
    error, _ = _refused(client_for("badnonce"), _register, UpstreamProblem, "badNonce")
    assert isinstance(error, UpstreamProblem)
    assert error.acme_type == "badNonce" and error.transient
    assert upstream.count("POST", "/badnonce/account") == NONCE_RETRIES + 1
    assert upstream.count("HEAD", "/badnonce/nonce") == 1
    # Each retry is signed with the nonce the refusal before it carried (RFC 8555 §6.5).
    given = upstream.nonces_given["badnonce"]
    assert upstream.nonces_used["badnonce"] == given[:-1]
    assert len(set(upstream.nonces_used["badnonce"])) == NONCE_RETRIES + 1


# ---------------------------------------------------------------------- (h) statuses


def test_a_500_without_a_problem_is_transient_unavailability(
    client_for: Callable[..., UpstreamClient],
) -> None:
    error, _ = _refused(
        client_for("status-500"), _directory, UpstreamUnavailable, "^the upstream answered 500$"
    )
    assert error.transient and error.retry_after is None


def test_a_503_without_a_problem_keeps_its_retry_after(
    client_for: Callable[..., UpstreamClient],
) -> None:
    error, _ = _refused(client_for("status-503"), _directory, UpstreamUnavailable, "answered 503")
    assert error.transient and error.retry_after == 30


def test_a_400_in_html_is_a_protocol_error(client_for: Callable[..., UpstreamClient]) -> None:
    error, _ = _refused(
        client_for("status-400-html"),
        _directory,
        UpstreamProtocolError,
        "^the upstream answered 400 without a problem$",
    )
    assert not error.transient


@pytest.mark.parametrize(
    ("case", "match"),
    [("not-json", "JSON that does not parse"), ("json-array", "JSON that is not an object")],
)
def test_a_directory_that_is_no_json_object_is_a_protocol_error(
    client_for: Callable[..., UpstreamClient], case: str, match: str
) -> None:
    _refused(client_for(case), _directory, UpstreamProtocolError, match)


# ---------------------------------------------------------------------- (i) certificate


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("cert-text", "not a PEM chain"),
        ("cert-binary", "not a PEM chain"),
        ("cert-broken-pem", "not a PEM chain"),
        ("cert-empty", "certificate"),
    ],
)
def test_a_certificate_that_is_not_pem_is_refused(
    upstream: HostileUpstream, client_for: Callable[..., UpstreamClient], case: str, match: str
) -> None:
    error, _ = _refused(
        client_for(case, account=True),
        lambda c: c.certificate(upstream.url(case, "cert")),
        UpstreamProtocolError,
        match,
    )
    assert not error.transient
    assert upstream.count("POST", f"/{case}/cert") == 1
    assert PEM_TEXT.strip() not in str(error)


# ---------------------------------------------------------------------- compression


_CLIENT_IN_A_BOUNDED_PROCESS = """
import asyncio, resource, ssl, sys
from cryptography.hazmat.primitives.asymmetric import ec
from acmefleet.upstream.client import UpstreamClient
from acmefleet.upstream.signing import AccountSigner

url, ca_bundle, headroom = sys.argv[1], sys.argv[2], int(sys.argv[3])
signer = AccountSigner(ec.generate_private_key(ec.SECP256R1()))
context = ssl.create_default_context(cafile=ca_bundle)

async def main():
    async with UpstreamClient(url, signer, verify=context, timeout=20) as client:
        await client.directory()

size = next(l for l in open("/proc/self/status") if l.startswith("VmSize:"))
limit = int(size.split()[1]) * 1024 + headroom
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    asyncio.run(main())
except BaseException as exc:
    print(f"{type(exc).__name__}: {exc}")
"""


def test_a_compressed_answer_is_no_memory_bomb(upstream: HostileUpstream, tls: ServingCert) -> None:
    upstream.bomb()  # made before the child's clock runs
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CLIENT_IN_A_BOUNDED_PROCESS,
            upstream.url("gzip-bomb"),
            str(tls.ca_bundle),
            str(HEADROOM),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert upstream.count("GET", "/gzip-bomb/directory") >= 1
    assert done.stdout.startswith("UpstreamProtocolError: "), (done.stdout, done.stderr[-2000:])


# ---------------------------------------------------------------------- renewal information

CERT_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"  # RFC 9773 §4.1's example


def test_an_upstream_window_is_read_with_its_retry_after(
    client_for: Callable[..., UpstreamClient],
) -> None:
    window, _ = _run(client_for("ari-good"), lambda c: c.renewal_info(CERT_ID))
    assert window is not None
    assert (window.start.isoformat(), window.end.isoformat()) == (
        "2027-01-01T00:00:00+00:00",
        "2027-01-02T00:00:00+00:00",
    )
    assert window.retry_after == 120


def test_an_upstream_without_renewal_info_is_not_asked(
    upstream: HostileUpstream, client_for: Callable[..., UpstreamClient]
) -> None:
    window, _ = _run(client_for("good"), lambda c: c.renewal_info(CERT_ID))
    assert window is None
    assert upstream.count("GET", f"/good/ari/{CERT_ID}") == 0


@pytest.mark.parametrize(
    ("case", "kind", "match"),
    [
        ("ari-backwards", UpstreamProtocolError, "ends before it starts"),
        ("ari-prose", UpstreamProtocolError, "not RFC 3339"),
        ("ari-no-date", UpstreamProtocolError, "does not exist"),
        ("ari-overflow", UpstreamProtocolError, "does not exist"),
        ("ari-far", UpstreamProtocolError, "out of any certificate's life"),
        ("ari-no-window", UpstreamProtocolError, "has no suggestedWindow"),
        ("ari-redirect", UpstreamProtocolError, "redirected"),
        ("ari-elsewhere", UpstreamProtocolError, "renewalInfo URL leaves the directory's origin"),
    ],
)
def test_a_malformed_upstream_window_is_refused(
    upstream: HostileUpstream,
    client_for: Callable[..., UpstreamClient],
    case: str,
    kind: type[UpstreamError],
    match: str,
) -> None:
    _refused(client_for(case), lambda c: c.renewal_info(CERT_ID), kind, match)
    assert upstream.count("GET", "/redirect/target") == 0


@pytest.mark.parametrize("cert_id", ["../../directory", "a.b/../c", "a.b?x=1", "", "a" * 300])
def test_a_cert_id_that_is_no_cert_id_is_never_sent(
    upstream: HostileUpstream, client_for: Callable[..., UpstreamClient], cert_id: str
) -> None:
    with pytest.raises(ValueError, match="not a certID"):
        _run(client_for("ari-good"), lambda c: c.renewal_info(cert_id))
    assert not any(
        "/ari/" in path and "good" in path and CERT_ID not in path
        for (_method, path) in upstream.counts
    )
