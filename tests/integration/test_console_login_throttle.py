"""Failed console sign-ins over HTTPS: audited, then 429 with Retry-After, per address and
overall, shared by every worker (the count is in the database; the server runs two).

Different client addresses come from ``X-Forwarded-For``: the server is configured to trust
127.0.0.1 as a reverse proxy (``trusted_proxies``); by default it believes no such header.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from acmefleet.clock import SystemClock
from acmefleet.console import tokens
from tests.support.acmefleet_server import AcmefleetServer, running_acmefleet

pytestmark = pytest.mark.integration

LIMITS = {"login_failures_per_address": 3, "login_failures_overall": 5, "login_window_seconds": 600}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmefleetServer]:
    with running_acmefleet(
        tmp_path_factory.mktemp("login-throttle"),
        workers=2,
        limits=LIMITS,
        settings={"trusted_proxies": '["127.0.0.1"]'},
    ) as running:
        yield running
        log = running.log_text()
    assert "Traceback" not in log, f"the server logged an unhandled error:\n{log[-4000:]}"
    assert not [s for s in running.minted_secrets if s in log], "a token in the server log"


def sign_in(server: AcmefleetServer, token: str, address: str) -> httpx.Response:
    # A fresh connection each time, so the two workers both take part.
    with httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca_bundle))) as client:
        return client.post(
            server.base_url + "/console/login",
            data={"token": token},
            headers={"X-Forwarded-For": address},
        )


def test_failures_are_audited_then_throttled_per_address_and_overall(
    server: AcmefleetServer,
) -> None:
    with server.db() as database, database.write() as conn:
        good, _ = tokens.create(
            conn, name="throttle-admin", role="admin", actor="test", now=SystemClock().now()
        )
    server.minted_secrets.append(good)
    wrong = [f"acmefleet_0123456789abcdef_guess{n}" for n in range(6)]
    server.minted_secrets.extend(wrong)

    for guess in wrong[:3]:
        assert sign_in(server, guess, "192.0.2.1").status_code == 403
    refused = sign_in(server, good, "192.0.2.1")  # even the right token: not looked at
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 600
    assert "Too many failed sign-ins" in refused.text
    assert refused.headers["x-frame-options"] == "DENY", "still a console page"
    assert "set-cookie" not in refused.headers

    assert sign_in(server, good, "192.0.2.2").status_code == 303, "other addresses sign in"

    for guess in wrong[3:5]:
        assert sign_in(server, guess, "198.51.100.7").status_code == 403
    # Five failures from all addresses: nobody is let in until they age out.
    overall = sign_in(server, good, "203.0.113.9")
    assert overall.status_code == 429 and int(overall.headers["retry-after"]) > 0

    assert server.count("audit_events", action="console.login_failed") == 5
    assert (
        server.count("audit_events", action="console.login_failed", target="0123456789abcdef") == 5
    )
    assert server.count("console_login_failures") == 5, "refused attempts add no rows"
    rows = repr(server.snapshot()["audit_events"])
    assert not any(guess.rsplit("_", 1)[1] in rows for guess in wrong), "no presented secret"
