"""``acmefleet validator run`` on loopback: a real agent process, real mutual TLS, and
hostile input refused precisely (each with its status and one sentence), bounded in size,
time and concurrency; checks answered with the same validators (and problems) as the server's.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.acmefleet_server import ACMEFLEET
from tests.support.knot import SilentResolver
from tests.support.mpic import PerspectivesCA
from tests.support.procs import die_with_parent, free_ports, terminate_group

pytestmark = pytest.mark.integration
SERVER = "acme-server.agent.test"
AGENT = "agent.agent.test"
TOKEN = "T" * 43
THUMBPRINT = "P" * 43
KEY_AUTHZ = f"{TOKEN}.{THUMBPRINT}"
ERR = "urn:ietf:params:acme:error:"


class _Challenges(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = KEY_AUTHZ.encode() if self.path.endswith(TOKEN) else b"wrong"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Agent:
    def __init__(self, workdir: Path) -> None:
        self.ca = PerspectivesCA(workdir / "pki", "agent-test")
        self.client = self.ca.issue(SERVER, client=True, server=False)
        self.cert, self.key = self.ca.issue(AGENT, client=False, server=True)
        self.port, self.http_port = free_ports(2)
        self.silent = SilentResolver()
        self.web = http.server.ThreadingHTTPServer(("127.0.0.1", self.http_port), _Challenges)
        threading.Thread(target=self.web.serve_forever, daemon=True).start()
        self.config = workdir / "agent.toml"
        self.config.write_text(
            "[agent]\n"
            f'listen = "127.0.0.1:{self.port}"\n'
            f'cert_file = "{self.cert}"\n'
            f'key_file = "{self.key}"\n'
            f'client_ca_file = "{self.ca.ca_file}"\n'
            f'client_identity = "{SERVER}"\n'
            "max_concurrent_checks = 1\n"
            "request_timeout_seconds = 2\n"
            "[validation]\n"
            f"http01_port = {self.http_port}\n"
            f'dns_resolvers = ["{self.silent.address}"]\n'
            "timeout_seconds = 2\n"
            "allow_private_addresses = true\n"
            "[validation.hosts]\n"
            '"*" = "127.0.0.1"\n'
        )
        self.log = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [ACMEFLEET, "validator", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - no agent left if pytest dies
            )
        deadline = time.monotonic() + 20
        while "listening on" not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            terminate_group(self.proc)
        self.web.shutdown()
        self.silent.close()

    def context(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.ca_file))
        chosen = cert if cert is not None else self.client
        context.load_cert_chain(str(chosen[0]), str(chosen[1]))
        return context

    def raw(self, data: bytes, *, pause: float = 0.0) -> tuple[int, dict[str, Any]]:
        """Send ``data`` (after ``pause`` seconds) as the server would; status and JSON."""
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=15) as sock,
            self.context().wrap_socket(sock, server_hostname=AGENT) as tls,
        ):
            time.sleep(pause)
            # The agent may answer and close before all of it was sent.
            with contextlib.suppress(OSError):
                tls.sendall(data)
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    found = Agent(tmp_path_factory.mktemp("agent"))
    try:
        found.start()
        yield found
    finally:
        found.stop()
    assert "Traceback" not in found.log.read_text()


def post(body: bytes, content_type: str = "application/json", target: str = "/check") -> bytes:
    return (
        f"POST {target} HTTP/1.1\r\nHost: agent\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def check(kind: str = "http-01", name: str = "www.example.org", **fields: Any) -> bytes:
    request = {
        "kind": kind,
        "identifier": {"type": "dns", "value": name},
        "token": TOKEN,
        "key_authorization": KEY_AUTHZ,
        **fields,
    }
    return json.dumps(request).encode()


def caa(**fields: Any) -> bytes:
    request = {
        "kind": "caa",
        "name": "www.example.org",
        "wildcard": False,
        "account_uri": "https://acme.test/acme/public/acct/1",
        "method": "http-01",
        "issuer_domains": ["acme.test"],
        **fields,
    }
    return json.dumps(request).encode()


def test_a_check_that_passes(agent: Agent) -> None:
    assert agent.raw(post(check())) == (200, {"result": "pass"})


def test_a_check_that_fails_answers_the_acme_problem(agent: Agent) -> None:
    other = "U" * 43
    status, answer = agent.raw(post(check(token=other, key_authorization=f"{other}.{THUMBPRINT}")))
    assert status == 200
    assert answer["result"] == "fail"
    assert answer["problem"]["type"] == ERR + "incorrectResponse"
    assert "does not match the expected value" in answer["problem"]["detail"]


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        (post(b"x" * 5000), 413, "larger than 4096 bytes"),
        (
            b"POST /check HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b"Content-Length: 99999999\r\n\r\n",
            413,
            "larger than 4096 bytes",
        ),
        (post(b"{not json"), 400, "not JSON"),
        (post(b"[1, 2]"), 400, "a JSON object"),
        (post(check(extra=1)), 400, "unknown: ['extra']"),
        (post(check(kind="ca-other")), 400, "unknown kind 'ca-other'"),
        (post(check(kind="caa")), 400, "fields missing"),
        (post(caa(wildcard="yes")), 400, "'wildcard' must be"),
        (post(caa(name="*.example.org")), 400, "'name' must be"),
        (post(caa(account_uri="https://a.test/acct 1")), 400, "'account_uri' must be"),
        (post(caa(issuer_domains=[])), 400, "'issuer_domains' must be"),
        (post(check(kind="DNS 01!")), 400, "'kind' must be"),
        (post(check(name="not a name")), 400, "'identifier' is not"),
        (post(check(token="short")), 400, "'token' must be"),
        (post(check(key_authorization="T" * 43 + ".not a thumbprint")), 400, "'key_authorization'"),
        (post(check(), content_type="text/plain"), 415, "application/json"),
        (post(check(), target="/other"), 404, "the only resource is /check"),
        (b"GET /check HTTP/1.1\r\nHost: a\r\n\r\n", 405, "takes POST"),
        (b"\x16\x03\x01 not http at all\r\n\r\n", 400, "not an HTTP/1.1 request"),
        (b"POST /check HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n", 400, "too large"),
    ],
)
def test_hostile_requests_are_refused_precisely(
    agent: Agent, request_bytes: bytes, status: int, words: str
) -> None:
    got, answer = agent.raw(request_bytes)
    assert got == status, answer
    assert words in answer["error"], answer


def test_a_caa_check_whose_lookup_fails_does_not_pass(agent: Agent) -> None:
    """The agent runs the server's CAA check on its own (here silent) resolver: a lookup
    that gets no answer is never taken for permission."""
    status, answer = agent.raw(post(caa()))
    assert status == 200
    assert answer["result"] == "fail"
    assert answer["problem"]["type"] == ERR + "dns"
    assert "no DNS answer for the CAA records of www.example.org" in answer["problem"]["detail"]


def test_a_client_that_sends_nothing_is_dropped(agent: Agent) -> None:
    started = time.monotonic()
    status, answer = agent.raw(b"", pause=3)
    assert status == 408, answer
    assert time.monotonic() - started < 5


def test_checks_beyond_the_concurrency_bound_are_refused_at_once(agent: Agent) -> None:
    # dns-01 through a resolver that never answers: one check holds the only slot for its
    # 2-second deadline; the second is refused immediately, not queued.
    slow = post(check(kind="dns-01"))
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(agent.raw, slow)
        time.sleep(0.5)
        started = time.monotonic()
        second = agent.raw(post(check()))
        refused_in = time.monotonic() - started
        status, answer = first.result(timeout=15)
    assert second[0] == 503 and "too many checks" in second[1]["error"], second
    assert refused_in < 1.0
    assert status == 200 and answer["problem"]["type"] == ERR + "dns", answer
    assert "within 2 s" in answer["problem"]["detail"]


def test_the_pinned_client_identity_is_required(agent: Agent) -> None:
    other = agent.ca.issue("someone-else.agent.test", client=True, server=False)
    with (
        socket.create_connection(("127.0.0.1", agent.port), timeout=10) as sock,
        agent.context(other).wrap_socket(sock, server_hostname=AGENT) as tls,
    ):
        tls.sendall(post(check()))
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 403 "), response
    assert b"www.example.org" not in response
