"""The shared Debian root filesystem every host starts from, built once and cached.

debootstrap (minbase) from the mirror in this machine's apt sources, plus sshd, Python
and systemd; units that make no sense in a container are masked. The tarball is cached
under the lab directory, named by a hash of what goes into it.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from acmefleet.lab.mirror import mirror_urls
from acmefleet.lab.system import LabError, run

SUITE = "bookworm"
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
# nothing of acmefleet, so the list is not read from there), plus the ACME server's.
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
)
RECIPE_VERSION = "2"


def recipe_hash() -> str:
    recipe = "|".join(
        [RECIPE_VERSION, SUITE, *PACKAGES, *PREFETCHED, *MASKED_UNITS, SSHD_CONFIG, APT_CONFIG]
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _configure(root: Path) -> None:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    if sources.exists():
        lines = [ln for ln in sources.read_text().splitlines() if not ln.startswith("#")]
        (root / "etc/apt/sources.list.d/debian.sources").write_text("\n".join(lines) + "\n")
    else:
        (root / "etc/apt/sources.list").write_text(f"deb {mirror_urls()[0]} {SUITE} main\n")
    (root / "etc/apt/apt.conf.d/90acmefleet-lab").write_text(APT_CONFIG)
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/acmefleet-lab.conf").write_text(SSHD_CONFIG)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    (root / "etc/machine-id").write_text("")
    run(["chroot", str(root), "systemctl", "mask", *MASKED_UNITS], check=False)
    run(["chroot", str(root), "systemctl", "enable", "ssh.service"])
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


def build(cache_dir: Path) -> Path:
    """The cached rootfs tarball, built now if missing (one to two minutes)."""
    tarball = cache_dir / f"rootfs-{SUITE}-{recipe_hash()}.tar"
    if tarball.exists():
        return tarball
    with _locked(cache_dir):
        if tarball.exists():
            return tarball
        return _build(cache_dir, tarball)


def _build(cache_dir: Path, tarball: Path) -> Path:
    urls = mirror_urls()
    if not urls:
        raise LabError("no Debian mirror in /etc/apt/sources.list(.d); cannot build hosts")
    work = cache_dir / "rootfs-build"
    shutil.rmtree(work, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(work),
            urls[0],
        ],
        timeout=1200,
    )
    _configure(work)
    partial = tarball.with_suffix(".partial")
    run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(partial), "."], timeout=600)
    partial.rename(tarball)
    shutil.rmtree(work, ignore_errors=True)
    return tarball


def extracted(cache_dir: Path) -> Path:
    """The tarball unpacked once, the read-only lower layer of every host's overlay."""
    tarball = build(cache_dir)
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
