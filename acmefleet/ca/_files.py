"""Atomic file writes with exact permissions (no window where a key is readable)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600
PUBLIC_FILE = 0o644
PRIVATE_DIR = 0o700


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a 0600 temp file beside ``path``, set ``mode``, then rename over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing; a directory created here is 0700."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR, parents=True)
        path.chmod(PRIVATE_DIR)
