"""Shared fixtures: a real acmefleet server per test module; the hypothesis profiles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.acmefleet_server import AcmefleetServer, checked_acmefleet
from tests.support.fuzz import register_profiles

# Hypothesis profiles for the fuzz tests: "ci" (derandomized, what the fuzz tests use
# unless told otherwise) and "long" (``pytest --hypothesis-profile=long``: random, more).
register_profiles()


@pytest.fixture(scope="module")
def acmefleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmefleetServer]:
    """A running server with organisation ``acme`` owning example.com (not validated)."""
    with checked_acmefleet(tmp_path_factory.mktemp("acmefleet")) as server:
        yield server
