"""The lab's per-suite images and per-host logins (no hosts started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acmefleet.lab import rootfs
from acmefleet.lab.fleet import inventory_document
from acmefleet.lab.hosts import Lab, LabHost
from acmefleet.lab.system import LabError

MACHINE_SOURCES = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""


def test_sources_are_renamed_to_the_suite_and_keep_the_mirror() -> None:
    text = rootfs.for_suite(MACHINE_SOURCES, "trixie")
    assert "Suites: trixie trixie-updates\n" in text
    assert "Suites: trixie-security\n" in text
    assert "bookworm" not in text and "#" not in text
    assert text.count("URIs: http://mirror.invalid/") == 2
    assert rootfs.for_suite(MACHINE_SOURCES, "bookworm").count("bookworm") == 3


def test_each_suite_has_its_own_image_and_unknown_suites_are_refused() -> None:
    assert rootfs.recipe_hash("bookworm") != rootfs.recipe_hash("trixie")
    assert set(rootfs.SUITES) == set(rootfs.DEBIAN_VERSIONS)
    with pytest.raises(LabError, match="unknown suite"):
        rootfs.recipe_hash("sid")


def test_the_sudoers_drop_in_is_password_less_for_the_lab_user_only() -> None:
    assert f"{rootfs.LAB_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n" == rootfs.SUDOERS
    assert rootfs.SUDOERS_FILE.startswith("etc/sudoers.d/")
    assert "." not in Path(rootfs.SUDOERS_FILE).name  # sudo skips drop-ins with a dot


def test_user_ids_come_from_the_image(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nfleet:x:1000:1001::/h:/b\n")
    assert rootfs.user_ids(tmp_path, "fleet") == (1000, 1001)
    with pytest.raises(LabError):
        rootfs.user_ids(tmp_path, "nobody")


def test_inventory_logs_in_as_the_sudo_user_unless_told_otherwise(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    server = LabHost("srv", 10, "10.77.0.10", 1)
    apache = LabHost("a13", 11, "10.77.0.11", 2, "trixie")
    nginx = LabHost("n12", 12, "10.77.0.12", 3)
    doc = inventory_document(
        lab, server, [(apache, "certbot_apache"), (nginx, "lego_nginx")], users={"n12": "root"}
    )
    assert doc["vars"]["ansible_user"] == rootfs.LAB_USER  # type: ignore[index]
    assert "ansible_user" not in doc["acme_servers"][0]["vars"]  # type: ignore[index]
    hosts = {h["name"]: h for h in doc["hosts"]}  # type: ignore[attr-defined]
    assert "vars" not in hosts["a13"]
    assert hosts["n12"]["vars"] == {"ansible_user": "root"}
