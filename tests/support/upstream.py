"""Debian's pebble as an upstream CA that validates dns-01 through a test knotd, and what the
relay's tests check of it (its root, its view of a certificate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from tests.support.clients import san_names
from tests.support.knot import KnotServer
from tests.support.pebble import PebbleServer, make_eab_keys
from tests.support.procs import tls_context


def validating_pebble(
    workdir: Path,
    knot: KnotServer,
    *,
    authz_reuse: int,
    eab_count: int = 1,
    host: str = "127.0.0.1",
    **config: Any,
) -> PebbleServer:
    """A pebble (not started) requiring EAB and really validating, resolving through
    ``knot``; ``authz_reuse``: the percentage of orders given an authorization it holds;
    ``host``: the address it listens on (in its TLS certificate too)."""
    return PebbleServer(
        workdir,
        make_eab_keys(eab_count),
        host=host,
        validate=True,
        dns_server=knot.address,
        env={"PEBBLE_AUTHZREUSE": str(authz_reuse)},
        extra_config=config,
    )


def private_file(path: Path, text: str) -> Path:
    """``text`` in a file created 0600 (a secret the server reads)."""
    path.touch(mode=0o600)
    path.write_text(text)
    return path


def _management(pebble: PebbleServer, path: str) -> httpx.Response:
    with httpx.Client(verify=tls_context(pebble.ca_bundle), trust_env=False) as http:
        response = http.get(f"{pebble.management_url}{path}")
    response.raise_for_status()
    return response


def pebble_root(pebble: PebbleServer) -> x509.Certificate:
    return x509.load_pem_x509_certificate(_management(pebble, "/roots/0").content)


def pebble_status(pebble: PebbleServer, serial: str) -> str:
    """``Valid`` or ``Revoked``: what pebble says of the certificate with ``serial``."""
    return str(_management(pebble, f"/cert-status-by-serial/{serial}").json()["Status"])


def check_chains_to_pebble(pem: bytes, pebble: PebbleServer, names: list[str]) -> x509.Certificate:
    """Each certificate of ``pem`` signed by the next, the last by pebble's root; the leaf
    names exactly ``names``. Returns the leaf."""
    chain = x509.load_pem_x509_certificates(pem)
    for child, parent in zip(chain, [*chain[1:], pebble_root(pebble)], strict=True):
        child.verify_directly_issued_by(parent)
    assert san_names(chain[0]) == set(names)
    return chain[0]
