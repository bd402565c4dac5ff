"""Shared fixtures: a real acmefleet server per test module; the hypothesis profiles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.acmefleet_server import AcmefleetServer, running_acmefleet
from tests.support.fuzz import register_profiles

# Hypothesis profiles for the fuzz tests: "ci" (derandomized, what the fuzz tests use
# unless told otherwise) and "long" (``pytest --hypothesis-profile=long``: random, more).
register_profiles()


@pytest.fixture(scope="module")
def acmefleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmefleetServer]:
    """A running server with organisation ``acme`` owning example.com (not validated)."""
    with running_acmefleet(tmp_path_factory.mktemp("acmefleet")) as server:
        server.org("acme", "example.com", "10.20.0.0/16")
        yield server
        log = server.log_text()
        leaked = [secret for secret in server.minted_secrets if secret in log]
    assert "Traceback" not in log, f"the server logged an unhandled error:\n{log[-4000:]}"
    assert not leaked, "an EAB HMAC key appeared in the server log"
