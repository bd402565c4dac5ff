"""PEM bundle of root certificates for relying parties."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from acmefleet.ca._files import PUBLIC_FILE, write_atomic
from acmefleet.ca.errors import CaError
from acmefleet.ca.hierarchy import load_root


def write_bundle(ca_dir: Path, levels: Sequence[str], out: Path) -> None:
    """Write the roots of ``levels`` (in order, once each) to ``out`` with mode 0644."""
    if not levels:
        raise CaError("a root bundle needs at least one trust level")
    pems = [load_root(ca_dir, level).public_bytes(Encoding.PEM) for level in dict.fromkeys(levels)]
    write_atomic(out, b"".join(pems), PUBLIC_FILE)
