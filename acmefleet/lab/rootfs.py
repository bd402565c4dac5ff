"""The shared Debian root filesystems hosts start from, one per suite, built once and cached.

debootstrap (minbase) from the mirror in this machine's apt sources, plus sshd, Python
and systemd; units that make no sense in a container are masked. Each image has root
(SSH key only) and a non-root user, LAB_USER, with password-less sudo, as most sites
reach their hosts. The tarball is cached under the lab directory, named by the suite and
a hash of what goes into it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from acmefleet.lab.mirror import mirror_urls
from acmefleet.lab.system import LabError, run

SUITES = ("bookworm", "trixie")  # Debian 12 and 13
DEFAULT_SUITE = "bookworm"
DEBIAN_VERSIONS = {"bookworm": "12", "trixie": "13"}
LAB_USER = "fleet"
SUDOERS = f"{LAB_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n"
SUDOERS_FILE = "etc/sudoers.d/acmefleet-lab"
PACKAGES = (
    "openssh-server",
    "python3",
    "python3-apt",
    "iproute2",
    "procps",
    "ca-certificates",
    "sudo",
    "curl",
    "systemd",
    "systemd-sysv",
    "dbus",
)
MASKED_UNITS = (
    "systemd-logind.service",
    "getty.target",
    "console-getty.service",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-remount-fs.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
)
SSHD_CONFIG = """PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""
APT_CONFIG = 'APT::Install-Recommends "false";\nAcquire::Retries "3";\n'
# The packages the roles install, kept as .deb files in the image's apt cache: every Linux
# stack's packages of meta/stacks.yml (tests/unit/test_stacks.py checks; the lab imports
# nothing of acmefleet, so the list is not read from there), plus the ACME server's, its
# replicas' database (acme_database) and load balancer (acme_balancer).
PREFETCHED = (
    "apache2",
    "certbot",
    "python3-certbot-apache",
    "python3-certbot-nginx",
    "nginx",
    "lego",
    "python3-venv",
    "python3-pip",
    "openssl",
    "postgresql",
    "haproxy",
)
RECIPE_VERSION = "3"


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise LabError(f"unknown suite {suite!r}; the lab builds {', '.join(SUITES)}")
    return suite


def recipe_hash(suite: str = DEFAULT_SUITE) -> str:
    recipe = "|".join(
        [
            RECIPE_VERSION,
            check_suite(suite),
            *PACKAGES,
            *PREFETCHED,
            *MASKED_UNITS,
            SSHD_CONFIG,
            APT_CONFIG,
            LAB_USER,
            SUDOERS,
        ]
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def for_suite(sources: str, suite: str) -> str:
    """This machine's deb822 sources, comments dropped, every suite renamed to ``suite``.

    ``bookworm``, ``bookworm-updates`` and ``bookworm-security`` become ``trixie``,
    ``trixie-updates`` and ``trixie-security``: same mirror, same components and keyring.
    """
    lines = []
    for line in sources.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("Suites:"):
            names = [re.sub(r"^[a-z]+(?=$|-)", suite, name) for name in line.split()[1:]]
            lines.append("Suites: " + " ".join(names))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _add_user(root: Path) -> None:
    """LAB_USER with password-less sudo, the drop-in checked by visudo before it counts."""
    run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", LAB_USER])
    sudoers = root / SUDOERS_FILE
    sudoers.write_text(SUDOERS)
    sudoers.chmod(0o440)
    run(["chroot", str(root), "visudo", "-c", "-q", "-f", f"/{SUDOERS_FILE}"])
    home = root / "home" / LAB_USER / ".ssh"
    home.mkdir(mode=0o700)
    uid, gid = user_ids(root, LAB_USER)
    os.chown(home, uid, gid)


def user_ids(root: Path, user: str) -> tuple[int, int]:
    """The uid and gid of ``user`` in the image (not the controller's passwd)."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LabError(f"no user {user!r} in {root}/etc/passwd")


def _configure(root: Path, suite: str) -> None:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    if sources.exists():
        (root / "etc/apt/sources.list.d/debian.sources").write_text(
            for_suite(sources.read_text(), suite)
        )
    else:
        (root / "etc/apt/sources.list").write_text(f"deb {mirror_urls()[0]} {suite} main\n")
    (root / "etc/apt/apt.conf.d/90acmefleet-lab").write_text(APT_CONFIG)
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/acmefleet-lab.conf").write_text(SSHD_CONFIG)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    (root / "etc/machine-id").write_text("")
    run(["chroot", str(root), "systemctl", "mask", *MASKED_UNITS], check=False)
    run(["chroot", str(root), "systemctl", "enable", "ssh.service"])
    _add_user(root)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    run(["chroot", str(root), "apt-get", "update", "-q"], timeout=600)
    run(["chroot", str(root), "apt-get", "clean"])
    # Downloaded, not installed: roles still install them, without fetching them again.
    run(
        ["chroot", str(root), "apt-get", "install", "-y", "-q", "--download-only", *PREFETCHED],
        timeout=900,
    )
    # Hosts get no DNS: the mirror is mapped in each host's /etc/hosts.
    (root / "etc/resolv.conf").write_text("# acmefleet lab host: no DNS\n")
    for pattern in ("tmp/*", "var/log/*.log", "var/log/apt/*"):
        for path in root.glob(pattern):
            if path.is_file():
                path.unlink()


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    """One builder at a time (hosts are often started in parallel)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(cache_dir: Path, suite: str = DEFAULT_SUITE) -> Path:
    """The cached rootfs tarball of ``suite``, built now if missing (a few minutes)."""
    tarball = cache_dir / f"rootfs-{suite}-{recipe_hash(suite)}.tar"
    if tarball.exists():
        return tarball
    with _locked(cache_dir):
        if tarball.exists():
            return tarball
        return _build(cache_dir, tarball, suite)


def _build(cache_dir: Path, tarball: Path, suite: str) -> Path:
    urls = mirror_urls()
    if not urls:
        raise LabError("no Debian mirror in /etc/apt/sources.list(.d); cannot build hosts")
    work = cache_dir / f"rootfs-build-{suite}"
    shutil.rmtree(work, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            suite,
            str(work),
            urls[0],
        ],
        timeout=1200,
    )
    _configure(work, suite)
    partial = tarball.with_suffix(".partial")
    run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(partial), "."], timeout=600)
    partial.rename(tarball)
    shutil.rmtree(work, ignore_errors=True)
    return tarball


def extracted(cache_dir: Path, suite: str = DEFAULT_SUITE) -> Path:
    """The tarball unpacked once, the read-only lower layer of every host's overlay."""
    tarball = build(cache_dir, suite)
    base = cache_dir / f"{tarball.stem}.d"
    if (base / ".complete").exists():
        return base
    with _locked(cache_dir):
        if not (base / ".complete").exists():
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir(parents=True)
            run(["tar", "-C", str(base), "--numeric-owner", "-xf", str(tarball)], timeout=600)
            (base / ".complete").write_text("")
    return base
