"""pytest fixture factories (import them from a conftest.py or a test module).

from tests.support.fixtures import pebble_fixture
pebble = pebble_fixture(scope="module", eab_count=8)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.acme_client import AccountKey, AcmeClient
from tests.support.pebble import PEBBLE_BINARY, PebbleServer, make_eab_keys, pebble_available


def pebble_fixture(
    *,
    scope: Any = "module",
    eab_count: int = 8,
    eab_required: bool = True,
    env: dict[str, str] | None = None,
) -> Any:
    """A fixture yielding a started ``PebbleServer``; without pebble the tests fail.

    Debian's pebble is installed by scripts/quickstart, so a missing binary is an error
    (a skip would let CI pass without the side-by-side tests).
    """

    @pytest.fixture(scope=scope)
    def _pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleServer]:
        if not pebble_available():
            pytest.fail(
                f"{PEBBLE_BINARY} is not on PATH: install Debian's pebble "
                "(scripts/quickstart setup)"
            )
        workdir = tmp_path_factory.mktemp("pebble")
        with PebbleServer(
            workdir, make_eab_keys(eab_count), eab_required=eab_required, env=env
        ) as server:
            yield server

    return _pebble


ClientFactory = Callable[..., AcmeClient]


def acme_client_factory(directory_url: str, ca_bundle: Any) -> Iterator[ClientFactory]:
    """Generator for a fixture making ``AcmeClient``s that are closed at teardown."""
    clients: list[AcmeClient] = []

    def make(account_key: AccountKey | None = None, **kwargs: Any) -> AcmeClient:
        client = AcmeClient(directory_url, ca_bundle, account_key, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
