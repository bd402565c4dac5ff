"""The validation queue across real server processes on one SQLite database.

Every server here is a real ``acmefleet server run``; the http-01 targets are a real web
server on loopback that counts the validation connections it holds at once (the measure of
bounded concurrency, not timings) and the requests per token (each job validated once).
A second process is another ``server run`` on the same data directory, on its own ports,
as a replica would be.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from acmefleet.store.schema import authorizations, challenges
from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import (
    ACMEFLEET,
    AcmefleetServer,
    checked_acmefleet,
)
from tests.support.procs import free_ports, terminate_group, wait_for_url

pytestmark = pytest.mark.integration
PREFIX = "/.well-known/acme-challenge/"


class Targets:
    """The web server every validated name points at (``[validation.hosts] "*"``).

    It answers each token's key authorization after ``delay`` seconds; tokens in ``hang``
    are held (the connection open, nothing sent) until ``release`` or close. It counts the
    requests it holds at once (``peak``) and the requests per token."""

    def __init__(self, port: int, delay: float = 0.0) -> None:
        self.delay = delay
        self.answers: dict[str, str] = {}
        self.hang: set[str] = set()
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.peak = 0
        self.released = threading.Event()
        lock = threading.Lock()
        targets = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path[len(PREFIX) :] if self.path.startswith(PREFIX) else ""
                with lock:
                    targets.hits[token] += 1
                    targets.in_flight += 1
                    targets.peak = max(targets.peak, targets.in_flight)
                try:
                    if token in targets.hang:
                        targets.released.wait(60)
                        return  # the validator is gone by now; send nothing
                    time.sleep(targets.delay)
                    body = targets.answers.get(token)
                    self.send_response(200 if body is not None else 404)
                    self.end_headers()
                    if body is not None:
                        with contextlib.suppress(OSError):
                            self.wfile.write(body.encode())
                finally:
                    with lock:
                        targets.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@contextlib.contextmanager
def targets_for(server: AcmefleetServer, delay: float = 0.0) -> Iterator[Targets]:
    found = Targets(server.http01_port, delay)
    try:
        yield found
    finally:
        found.close()


@contextlib.contextmanager
def second_process(
    server: AcmefleetServer, name: str = "second"
) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """Another ``server run`` on the same data directory (own ports): its log, its process."""
    port, pki_port = free_ports(2)
    log_path = server.data_dir.parent / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                ACMEFLEET,
                "server",
                "run",
                "--data-dir",
                str(server.data_dir),
                "--listen",
                f"127.0.0.1:{port}",
                "--pki-listen",
                f"127.0.0.1:{pki_port}",
                "--log-level",
                "debug",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_url(f"https://localhost:{port}/acme/private/directory", server.ca_bundle, proc)
        yield log_path, proc
    finally:
        terminate_group(proc)


def public_client(server: AcmefleetServer) -> AcmeClient:
    acme = AcmeClient(server.directory("public"), server.ca_bundle)
    assert acme.new_account(server.mint_eab("acme", "public")).status_code == 201
    return acme


def ask_validation(acme: AcmeClient, targets: Targets, name: str, *, hang: bool = False) -> str:
    """Order ``name``, set up its http-01 answer, ask for validation; the authz URL."""
    created = acme.new_order([name])
    assert created.status_code == 201, created.text
    authz_url: str = created.json()["authorizations"][0]
    challenge = next(c for c in acme.get(authz_url).json()["challenges"] if c["type"] == "http-01")
    targets.answers[challenge["token"]] = acme.key.key_authorization(challenge["token"])
    if hang:
        targets.hang.add(challenge["token"])
    answered = acme.answer_challenge(challenge["url"])
    assert answered.status_code == 200 and answered.json()["status"] == "processing"
    return authz_url


def token_of(acme: AcmeClient, authz_url: str) -> str:
    body: dict[str, Any] = acme.get(authz_url).json()
    return str(body["challenges"][0]["token"])


def wait_until(condition: Any, timeout: float, what: str) -> None:
    ends = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > ends:
            raise TimeoutError(what)
        time.sleep(0.05)


def outcomes(log_text: str) -> int:
    """Validation outcomes a process logged ("challenge <id> for <name>: ...")."""
    return sum(1 for line in log_text.splitlines() if " challenge " in line and " for " in line)


def kill_group(server: AcmefleetServer) -> None:
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)


QUEUE_SETTINGS = {"max_concurrent": "2", "lease_seconds": "2", "poll_seconds": "0.2"}


def test_bounded_concurrency_per_process(tmp_path: Path) -> None:
    """Eight validations against a slow target, max_concurrent = 2, one process: never more
    than two connections to the targets at once, and all eight end valid."""
    with (
        checked_acmefleet(tmp_path, settings=QUEUE_SETTINGS) as server,
        targets_for(server, delay=0.6) as targets,
        public_client(server) as acme,
    ):
        authzs = [ask_validation(acme, targets, f"b{n}.example.com") for n in range(8)]
        for authz_url in authzs:
            assert acme.poll(authz_url, timeout=60)["status"] == "valid"
        assert targets.peak == 2, f"{targets.peak} validations ran at once"
        assert sum(targets.hits.values()) == 8


def test_two_processes_share_the_queue_and_validate_each_job_once(tmp_path: Path) -> None:
    """All requests go to the first process; with its two slots busy on slow targets, the
    second (another ``server run`` on the same database) takes queued work on its polls.
    Every token is fetched exactly once; both processes recorded outcomes; no process ran
    more than two at once (the targets never held more than 2 x 2)."""
    with (
        checked_acmefleet(tmp_path, settings=QUEUE_SETTINGS) as server,
        targets_for(server, delay=0.5) as targets,
        second_process(server) as (second_log, _second),
        public_client(server) as acme,
    ):
        authzs = [ask_validation(acme, targets, f"s{n}.example.com") for n in range(12)]
        for authz_url in authzs:
            assert acme.poll(authz_url, timeout=60)["status"] == "valid"
        tokens = [token_of(acme, url) for url in authzs]
        assert {token: targets.hits[token] for token in tokens} == dict.fromkeys(tokens, 1)
        assert targets.peak <= 4
        first_did, second_did = outcomes(server.log_text()), outcomes(second_log.read_text())
        assert first_did + second_did == 12
        assert first_did > 0 and second_did > 0, (first_did, second_did)


def test_killed_mid_validation_another_process_finishes_it(tmp_path: Path) -> None:
    """kill -9 of the process validating against a hanging target: the other process
    validates again with what is left of the 20 s deadline (on this host it sees the owner
    gone and takes over at once; a replica elsewhere would wait for the 2 s lease, see the
    unit tests); the target answers this time, and the challenge is valid well within the
    deadline."""
    settings = {**QUEUE_SETTINGS, "timeout_seconds": "20"}
    with (
        checked_acmefleet(tmp_path, settings=settings) as server,
        targets_for(server) as targets,
        public_client(server) as acme,
    ):
        with second_process(server) as (_log, second):
            # Either process may claim it (the first at once, the second on a poll): the
            # first attempt hangs whichever runs it, and that one is killed.
            asked = datetime.now(UTC)
            authz_url = ask_validation(acme, targets, "k1.example.com", hang=True)
            token = token_of(acme, authz_url)
            wait_until(lambda: targets.hits[token] == 1, 10, "no validation reached the target")
            targets.hang.discard(token)  # the next attempt gets its answer
            killed = _kill_the_holder(server, second, token)
            body = _poll_direct(server, acme, authz_url, killed, timeout=30)
            ended = datetime.now(UTC)
        assert body["status"] == "valid", body
        assert targets.hits[token] == 2, "one attempt cut by the kill, one that finished"
        assert ended - asked < timedelta(seconds=20)


def test_killed_mid_validation_past_its_deadline_the_restart_ends_it_invalid(
    tmp_path: Path,
) -> None:
    """kill -9 during a validation against a target that hangs every attempt, and a start
    of the server only after the 3 s deadline: the challenge ends invalid at once with the
    deadline's problem, without another connection to the target."""
    settings = {**QUEUE_SETTINGS, "timeout_seconds": "3"}
    with (
        checked_acmefleet(tmp_path, settings=settings) as server,
        targets_for(server) as targets,
        public_client(server) as acme,
    ):
        authz_url = ask_validation(acme, targets, "d1.example.com", hang=True)
        token = token_of(acme, authz_url)
        wait_until(lambda: targets.hits[token] == 1, 10, "no validation reached the target")
        kill_group(server)
        time.sleep(4.5)  # past the deadline (3 s) and its grace (1 s)
        with second_process(server, "restarted") as (restarted_log, _restarted):
            started = time.monotonic()
            wait_until(lambda: _status(server, token) != "processing", 10, "still processing")
            took = time.monotonic() - started
            log = restarted_log.read_text()
        challenge = _challenge_row(server, token)
        assert challenge["status"] == "invalid"
        assert challenge["error"]["type"] == "urn:ietf:params:acme:error:connection"
        assert "did not finish within 3 s" in challenge["error"]["detail"]
        assert targets.hits[token] == 1, "no attempt past the deadline"
        assert took < 3
        assert "Traceback" not in log


def test_a_restart_takes_over_at_once_without_waiting_for_the_lease(tmp_path: Path) -> None:
    """kill -9 mid-validation and a restart at once on the same host: the new process sees
    that the lease's owner is gone and validates again right away with what is left of
    the 20 s deadline, not after the 10 s lease."""
    settings = {"max_concurrent": "2", "lease_seconds": "10", "timeout_seconds": "20"}
    with (
        checked_acmefleet(tmp_path, settings=settings) as server,
        targets_for(server) as targets,
        public_client(server) as acme,
    ):
        authz_url = ask_validation(acme, targets, "r1.example.com", hang=True)
        token = token_of(acme, authz_url)
        wait_until(lambda: targets.hits[token] == 1, 10, "no validation reached the target")
        targets.hang.discard(token)
        kill_group(server)
        with second_process(server, "restarted") as (restarted_log, _restarted):
            ready = time.monotonic()
            wait_until(lambda: _status(server, token) != "processing", 15, "still processing")
            took = time.monotonic() - ready
            log = restarted_log.read_text()
        assert _status(server, token) == "valid"
        assert targets.hits[token] == 2
        assert took < 5, f"{took:.1f} s: it waited for the lease"
        assert "took challenge" in log and "over from" in log


def _kill_the_holder(server: AcmefleetServer, second: subprocess.Popen[bytes], token: str) -> str:
    """kill -9 whichever process holds the validation's lease: "first" or "second"."""
    owner = str(_challenge_row(server, token)["lease_owner"])  # host:pidns:pid:random
    pid = int(owner.split(":")[2])
    assert server.proc is not None
    assert pid in (server.proc.pid, second.pid), owner
    if pid == server.proc.pid:
        kill_group(server)
        return "first"
    os.killpg(second.pid, signal.SIGKILL)
    second.wait(timeout=10)
    return "second"


def _poll_direct(
    server: AcmefleetServer, acme: AcmeClient, authz_url: str, killed: str, timeout: float
) -> dict[str, Any]:
    """The authorization once it is no longer pending: through ACME if the first process
    (the client's) lives, else from the database."""
    if killed == "second":
        return acme.poll(authz_url, timeout=timeout)
    ends = time.monotonic() + timeout
    authz_id = authz_url.rsplit("/", 1)[-1]
    while time.monotonic() < ends:
        status = _authz_status(server, authz_id)
        if status != "pending":
            return {"status": status}
        time.sleep(0.1)
    raise TimeoutError(f"{authz_url} still pending")


def _challenge_row(server: AcmefleetServer, token: str) -> dict[str, Any]:
    with server.db() as database, database.read() as conn:
        row = conn.execute(select(challenges).where(challenges.c.token == token)).one()
    return dict(row._mapping)


def _status(server: AcmefleetServer, token: str) -> str:
    return str(_challenge_row(server, token)["status"])


def _authz_status(server: AcmefleetServer, authz_id: str) -> str:
    with server.db() as database, database.read() as conn:
        return str(
            conn.execute(
                select(authorizations.c.status).where(authorizations.c.id == authz_id)
            ).scalar_one()
        )
