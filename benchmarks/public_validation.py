"""What the public-endpoint benchmark validates against: the client's http-01 responder and
Debian's Knot DNS serving the zone that dns-01 records go into.

Both servers under test are pointed at the same two things: acmefleet through ``[validation]``
(``http01_port``, ``hosts``, ``dns_resolvers``), pebble through ``httpPort`` and
``-dnsserver``.  Each counts what it was asked, so a run shows that every issuance was really
validated: the responder counts the key authorizations it served, knotd the TXT queries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

from acmefleet.validation.dns01 import txt_value
from tests.support.knot import ALGORITHM, KEY_NAME, ZONE, KnotServer
from tests.support.procs import tree_cpu_seconds

#: Issued names live under this label of Knot's zone; a wildcard A record sends pebble's
#: http-01 lookups to loopback (acmefleet gets the same answer from its hosts mapping).
SUBZONE = f"bench.{ZONE}"
RECORDS = ["*.bench A 127.0.0.1"]
UPDATE_TIMEOUT = 5.0
CHALLENGE_PATH = "/.well-known/acme-challenge/"


@dataclass
class Counts:
    """What the validators asked for, cumulative."""

    http_requests: int = 0  # every request the responder got
    http_served: int = 0  # ... that asked for a token it held
    dns_txt: int = 0
    dns_address: int = 0  # A and AAAA (pebble resolves names through knotd for http-01)
    dns_all: int = 0

    def minus(self, before: Counts) -> Counts:
        return Counts(*(a - b for a, b in zip(self.astuple(), before.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return (self.http_requests, self.http_served, self.dns_txt, self.dns_address,
                self.dns_all)


class Http01Responder:
    """Serves ``/.well-known/acme-challenge/<token>`` on 127.0.0.1, counting requests."""

    def __init__(self) -> None:
        self._answers: dict[str, str] = {}
        self._lock = threading.Lock()
        self.requests = 0
        self.served = 0
        responder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # validators open a connection per request

            def do_GET(self) -> None:
                token = self.path.removeprefix(CHALLENGE_PATH)
                answer = responder.answer(token) if self.path.startswith(CHALLENGE_PATH) else None
                body = (answer or "not found").encode()
                self.send_response(200 if answer is not None else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # thousands of lines otherwise

        class Server(ThreadingHTTPServer):
            # socketserver's backlog of 5 drops connections when pebble opens three per
            # validation for several validations at once: each drop is a 1 s SYN retry.
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="http01-responder")

    def answer(self, token: str) -> str | None:
        with self._lock:
            self.requests += 1
            found = self._answers.get(token)
            if found is not None:
                self.served += 1
            return found

    def publish(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self._answers[token] = key_authorization

    def withdraw(self, token: str) -> None:
        with self._lock:
            self._answers.pop(token, None)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()


class Dns01Publisher:
    """Sets and removes ``_acme-challenge`` TXT records in knotd by RFC 2136 with TSIG, as an
    ACME client's DNS plugin does (one TCP update per change)."""

    def __init__(self, knot: KnotServer) -> None:
        self.knot = knot
        self._keyring = dns.tsigkeyring.from_text({KEY_NAME: knot.secret})

    def _send(self, name: str, value: str | None) -> None:
        message = dns.update.UpdateMessage(ZONE, keyring=self._keyring,
                                           keyname=dns.name.from_text(KEY_NAME),
                                           keyalgorithm=ALGORITHM)
        record = f"_acme-challenge.{name}."
        message.delete(record, "TXT")
        if value is not None:
            message.add(record, 60, "TXT", f'"{value}"')
        response = dns.query.tcp(message, "127.0.0.1", port=self.knot.port,
                                 timeout=UPDATE_TIMEOUT)
        if response.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"RFC 2136 update of {record} refused: "
                               f"{dns.rcode.to_text(response.rcode())}")

    def publish(self, name: str, key_authorization: str) -> None:
        self._send(name, txt_value(key_authorization))

    def withdraw(self, name: str) -> None:
        self._send(name, None)


class ValidationWorld:
    """knotd (with query counters) and the http-01 responder, for one benchmark mode."""

    def __init__(self, workdir: Path) -> None:
        self.knot = KnotServer(workdir / "knot", RECORDS, query_stats=True)
        self.http = Http01Responder()
        self.dns = Dns01Publisher(self.knot)

    @property
    def dns_address(self) -> str:
        return self.knot.address

    def counts(self) -> Counts:
        by_type = self.knot.query_counts()
        return Counts(
            http_requests=self.http.requests, http_served=self.http.served,
            dns_txt=by_type.get("TXT", 0),
            dns_address=by_type.get("A", 0) + by_type.get("AAAA", 0),
            dns_all=sum(by_type.values()),
        )

    def dns_cpu_seconds(self) -> float:
        """CPU used by knotd so far."""
        if self.knot.proc is None:
            return 0.0
        return tree_cpu_seconds(self.knot.proc.pid)

    def __enter__(self) -> Self:
        self.knot.__enter__()
        try:
            self.http.__enter__()
        except BaseException:
            self.knot.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.http.__exit__(exc_type, exc, tb)
        finally:
            self.knot.__exit__(exc_type, exc, tb)
