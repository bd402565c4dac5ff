"""The route table matches whole paths: ``$`` would also match before a trailing newline."""

from __future__ import annotations

import pytest

from acmefleet.acme.routes import ACME_PATH, PKI_PATH, match_signed


def test_whole_paths_match() -> None:
    assert PKI_PATH.match("/pki/private/crl")
    found = ACME_PATH.match("/acme/private/new-order")
    assert found and found["rest"] == "new-order"
    matched = match_signed("acct/abc")
    assert matched is not None and matched[1] == {"id": "abc"}


@pytest.mark.parametrize("path", ["/pki/private/crl\n", "/pki/private/root.pem\n"])
def test_a_trailing_newline_is_no_pki_path(path: str) -> None:
    # The ASGI path is percent-decoded: "/pki/private/crl%0A" arrives as "…crl\n".
    assert PKI_PATH.match(path) is None


@pytest.mark.parametrize("path", ["/acme/private/new-order\n", "/acme/private\n/directory"])
def test_a_newline_is_no_acme_path(path: str) -> None:
    assert ACME_PATH.match(path) is None


@pytest.mark.parametrize("rest", ["acct/abc\n", "new-order\n", "order/x/finalize\n"])
def test_a_trailing_newline_is_no_signed_route(rest: str) -> None:
    assert match_signed(rest) is None
