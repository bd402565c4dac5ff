"""``server init`` after one that was killed half-way: what the killed one left is cleared,
never what a running init or a complete data directory holds."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from acmefleet.clock import SystemClock
from acmefleet.server.datadir import DataDirError, Initialised, initialise

COMPLETE = ["acmefleet.db", "ca", "ca-bundle.pem", "config.toml", "tls"]


def init(root: Path) -> Initialised:
    return initialise(
        root,
        base_url="https://localhost:8443",
        pki_base_url="http://localhost:8556",
        listen="127.0.0.1:8443",
        pki_listen="127.0.0.1:8556",
        clock=SystemClock(),
        passphrase=None,
    )


def names(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def test_a_staging_dir_left_inside_is_cleared(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir(mode=0o700)  # the service user's empty directory: init stages inside it
    stale = root / ".data.init-k1ll3d"
    (stale / "ca" / "private").mkdir(parents=True)
    (stale / "ca" / "private" / "root.key").write_text("a key nobody will use")
    (stale / "config.toml").write_text("")
    init(root)
    assert names(root) == COMPLETE


def test_files_moved_in_before_the_kill_are_cleared(tmp_path: Path) -> None:
    """Killed while moving its files in: some are in the data dir, the rest (config.toml,
    moved last, among them) still in the staging directory."""
    root = tmp_path / "data"
    stale = root / ".data.init-k1ll3d"
    (stale / "tls").mkdir(parents=True)
    (stale / "config.toml").write_text("")
    (root / "ca" / "private").mkdir(parents=True)
    (root / "ca" / "private" / "root.key").write_text("moved")
    (root / "acmefleet.db").write_bytes(b"moved")
    init(root)
    assert names(root) == COMPLETE
    assert (root / "acmefleet.db").read_bytes().startswith(b"SQLite format 3")
    assert "BEGIN" in (root / "ca" / "private" / "root.key").read_text()


def test_a_staging_dir_left_beside_is_cleared(tmp_path: Path) -> None:
    stale = tmp_path / ".data.init-k1ll3d"
    stale.mkdir()
    (stale / "config.toml").write_text("")
    init(tmp_path / "data")
    assert names(tmp_path) == ["data"]
    assert names(tmp_path / "data") == COMPLETE


def test_the_staging_dir_of_a_running_init_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "data"
    live = root / ".data.init-running"
    live.mkdir(parents=True)
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the init building it holds it
        with pytest.raises(DataDirError, match="not empty"):
            init(root)
        assert names(root) == [".data.init-running"]
    finally:
        os.close(fd)


def test_a_complete_data_dir_is_still_refused_and_kept(tmp_path: Path) -> None:
    """Killed after its last move, before removing its empty staging directory: the data
    dir is complete, so init refuses it as before; only the empty staging dir goes."""
    root = tmp_path / "data"
    init(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    (root / ".data.init-k1ll3d").mkdir()
    with pytest.raises(DataDirError, match="not empty"):
        init(root)
    assert names(root) == COMPLETE
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
