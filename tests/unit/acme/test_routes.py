"""The route table matches whole paths: ``$`` would also match before a trailing newline."""

from __future__ import annotations

import pytest

from acmefleet.acme.routes import ACME_PATH, PKI_PATH, match_signed, match_unsigned


def test_whole_paths_match() -> None:
    assert PKI_PATH.match("/pki/private/crl")
    found = ACME_PATH.match("/acme/private/new-order")
    assert found and found["rest"] == "new-order"
    matched = match_signed("acct/abc")
    assert matched is not None and matched[1] == {"id": "abc"}


def test_ocsp_and_renewal_info_paths() -> None:
    by_get = PKI_PATH.match("/pki/private/ocsp/MEIwQDA+MDwwOjAJBgUrDgMCGgUABBQ=")
    assert by_get and by_get["item"] is None and by_get["ocsp_get"].endswith("BBQ=")
    by_post = PKI_PATH.match("/pki/private/ocsp")
    assert by_post and by_post["item"] == "ocsp" and by_post["ocsp_get"] is None
    assert PKI_PATH.match("/pki/private/crl/MEIw") is None
    found = match_unsigned("renewal-info/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert found is not None and found[1] == {"cert_id": "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"}
    assert found[0].methods == ("GET", "HEAD")
    for rest in ("renewal-info/", "renewal-info/a.b\n", "renewal-info/a.b/c", "directory\n"):
        assert match_unsigned(rest) is None


@pytest.mark.parametrize(
    "path", ["/pki/private/crl\n", "/pki/private/root.pem\n", "/pki/private/ocsp/AAAA\n"]
)
def test_a_trailing_newline_is_no_pki_path(path: str) -> None:
    # The ASGI path is percent-decoded: "/pki/private/crl%0A" arrives as "…crl\n".
    assert PKI_PATH.match(path) is None


@pytest.mark.parametrize("path", ["/acme/private/new-order\n", "/acme/private\n/directory"])
def test_a_newline_is_no_acme_path(path: str) -> None:
    assert ACME_PATH.match(path) is None


@pytest.mark.parametrize("rest", ["acct/abc\n", "new-order\n", "order/x/finalize\n"])
def test_a_trailing_newline_is_no_signed_route(rest: str) -> None:
    assert match_signed(rest) is None
