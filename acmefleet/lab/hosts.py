"""Lab hosts: up, down, list. One systemd-nspawn machine per host, booting systemd.

Each host is an overlayfs over the shared rootfs (its own writable layer), its own network
namespace on the lab bridge, its own cgroup (so stopping a unit in one host never touches
another's), an SSH host key made here (so the controller knows it: no trust on first use),
and login by the lab's key as root or as the image's sudo user (rootfs.LAB_USER). A host
runs the Debian suite it is started with (bookworm or trixie).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from acmefleet.lab import network, rootfs, system
from acmefleet.lab.mirror import hosts_lines
from acmefleet.lab.system import LabError, run

DEFAULT_LAB_DIR = Path(os.environ.get("ACMEFLEET_LAB_DIR", "/var/lib/acmefleet/lab"))
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
SSH_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class LabHost:
    name: str
    index: int
    address: str
    pid: int
    suite: str = rootfs.DEFAULT_SUITE

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class Lab:
    """The lab's state directory: cache, keys, hosts."""

    def __init__(self, root: Path = DEFAULT_LAB_DIR) -> None:
        self.root = root
        self.cache = root / "cache"
        self.hosts_dir = root / "hosts"
        self.ssh_dir = root / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    def ssh_options(self) -> list[str]:
        return [
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=2",
            "-i",
            str(self.ssh_key),
        ]

    def _ensure_key(self) -> None:
        self.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.ssh_key.exists():
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "acmefleet-lab",
                    "-f",
                    str(self.ssh_key),
                ]
            )

    # -- queries

    def host_dir(self, name: str) -> Path:
        return self.hosts_dir / name

    def get(self, name: str) -> LabHost | None:
        info = self.host_dir(name) / "info.json"
        if not info.exists():
            return None
        return LabHost(**json.loads(info.read_text()))

    def list(self) -> list[LabHost]:
        if not self.hosts_dir.exists():
            return []
        found = (self.get(p.name) for p in sorted(self.hosts_dir.iterdir()))
        return [h for h in found if h is not None]

    # -- up

    def up(self, name: str, index: int, suite: str = rootfs.DEFAULT_SUITE) -> LabHost:
        if os.geteuid() != 0:
            raise LabError("lab hosts need root (network namespaces, mounts, nspawn)")
        if self.get(name) is not None or self.host_dir(name).exists():
            raise LabError(f"lab host {name!r} exists; take it down first")
        network.host_veth(name)  # validates the name length early
        rootfs.check_suite(suite)
        address = network.host_address(index)
        base = rootfs.extracted(self.cache, suite)
        self._ensure_key()
        network.bridge_up()
        system.ensure_inotify_instances()
        where = self.host_dir(name)
        try:
            merged = self._mount(where, base)
            self._personalise(merged, name, address)
            network.add_host(name, index)
            pid = self._boot(where, merged, name)
            host = LabHost(name, index, address, pid, suite)
            (where / "info.json").write_text(json.dumps(host.as_json()))
            self._wait_ssh(host)
            return host
        except BaseException:
            self.down(name)
            raise

    def _mount(self, where: Path, base: Path) -> Path:
        for part in ("upper", "work", "merged"):
            (where / part).mkdir(parents=True, exist_ok=True)
        merged = where / "merged"
        run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={base},upperdir={where / 'upper'},workdir={where / 'work'}",
                str(merged),
            ]
        )
        return merged

    def _personalise(self, merged: Path, name: str, address: str) -> None:
        (merged / "etc/hostname").write_text(f"{name}\n")
        lines = [
            "127.0.0.1\tlocalhost",
            f"127.0.1.1\t{name}",
            f"{network.GATEWAY}\tcontroller",
            *hosts_lines(),
        ]
        (merged / "etc/hosts").write_text("\n".join(lines) + "\n")
        public_key = Path(f"{self.ssh_key}.pub").read_text()
        authorized = merged / "root/.ssh/authorized_keys"
        authorized.write_text(public_key)
        authorized.chmod(0o600)
        user_keys = merged / "home" / rootfs.LAB_USER / ".ssh/authorized_keys"
        user_keys.write_text(public_key)
        user_keys.chmod(0o600)
        os.chown(user_keys, *rootfs.user_ids(merged, rootfs.LAB_USER))
        key = merged / "etc/ssh/ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)])
        public = Path(f"{key}.pub").read_text().split()
        self._remember_host_key(address, f"{public[0]} {public[1]}")

    @contextmanager
    def _known_hosts_locked(self) -> Iterator[None]:
        """Hosts start in parallel: one writer of known_hosts at a time."""
        with (self.ssh_dir / ".known_hosts.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _rewrite_known_hosts(self, address: str, key: str | None) -> None:
        """Drop the address's entry, then add ``key`` for it (if given), under the lock."""
        with self._known_hosts_locked():
            lines = []
            if self.known_hosts.exists():
                lines = [
                    ln
                    for ln in self.known_hosts.read_text().splitlines()
                    if not ln.startswith(f"{address} ")
                ]
            if key is not None:
                lines.append(f"{address} {key}")
            self.known_hosts.write_text("\n".join(lines) + ("\n" if lines else ""))

    def _remember_host_key(self, address: str, key: str) -> None:
        self._rewrite_known_hosts(address, key)

    def _boot(self, where: Path, merged: Path, name: str) -> int:
        cgroups = [root / "acmefleet-lab" / name for root in CGROUP_ROOTS if root.is_dir()]
        for cgroup in cgroups:
            cgroup.mkdir(parents=True, exist_ok=True)
        # Join the host's own cgroups before exec'ing nspawn (see the module docstring).
        joiner = "; ".join(f'echo $$ > "{c}/cgroup.procs"' for c in cgroups)
        command = [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            "--capability=CAP_NET_ADMIN",
            f"--machine={name}",
            "-D",
            str(merged),
            f"--network-namespace-path=/run/netns/{network.namespace(name)}",
        ]
        with (where / "console.log").open("wb") as console:
            proc = subprocess.Popen(
                ["sh", "-c", f'{joiner}; exec "$@"', "sh", *command],
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return proc.pid

    def _wait_ssh(self, host: LabHost) -> None:
        deadline = time.monotonic() + SSH_READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                probe = run(
                    ["ssh", *self.ssh_options(), f"root@{host.address}", "true"],
                    check=False,
                    timeout=10,
                )
            except LabError:  # a probe that hung (sshd up, the host still booting): again
                probe = None
            if probe is not None and probe.returncode == 0:
                return
            if not _alive(host.pid):
                raise LabError(
                    f"lab host {host.name} stopped while booting; see "
                    f"{self.host_dir(host.name) / 'console.log'}"
                )
            time.sleep(0.2)
        raise LabError(f"lab host {host.name} did not answer SSH within {SSH_READY_TIMEOUT:.0f} s")

    def diagnose(self, name: str, console_tail: int = 2000) -> str:
        """What a failed test should say about a host: is it running, what listens, its console.

        A host that died leaves its network namespace behind, where the kernel refuses
        connections: "Connection refused" alone cannot tell a dead host from a stopped sshd.
        """
        host = self.get(name)
        if host is None:
            return f"{name}: not up (no lab record)"
        lines = [
            f"{name} ({host.address}, {host.suite}): nspawn pid {host.pid} "
            + ("running" if _alive(host.pid) else "GONE (the host stopped)")
        ]
        listening = run(
            ["ip", "netns", "exec", network.namespace(name), "ss", "-Htln"],
            check=False,
            timeout=10,
        )
        ports = sorted(
            {ln.split()[3] for ln in listening.stdout.splitlines() if len(ln.split()) > 3}
        )
        lines.append(f"  listening in its namespace: {', '.join(ports) or 'nothing'}")
        console = self.host_dir(name) / "console.log"
        if console.exists():
            text = console.read_text(errors="replace")[-console_tail:].strip()
            lines.append(f"  console: {text or '(empty)'}")
        return "\n".join(lines)

    # -- down

    def down(self, name: str) -> None:
        """Stop the host, sweep every process left in its cgroups, unmount, forget it."""
        where = self.host_dir(name)
        host = self.get(name)
        if host is not None and _alive(host.pid):
            os.kill(host.pid, signal.SIGTERM)  # nspawn --boot: a clean poweroff
            _wait_gone(host.pid, 10.0)
            if _alive(host.pid):
                os.killpg(host.pid, signal.SIGKILL)
        for root in CGROUP_ROOTS:
            _kill_cgroup(root / "acmefleet-lab" / name)
        merged = where / "merged"
        mounted = merged.is_mount() or _mounted(merged)
        if mounted and run(["umount", "-R", str(merged)], check=False).returncode != 0:
            run(["umount", "-l", str(merged)], check=False)
        network.remove_host(name)
        for root in CGROUP_ROOTS:
            _remove_cgroup(root / "acmefleet-lab" / name)
        if host is not None:
            self._forget_host_key(host.address)
        shutil.rmtree(where, ignore_errors=True)

    def _forget_host_key(self, address: str) -> None:
        self._rewrite_known_hosts(address, None)

    def cleanup(self) -> None:
        """Every host down, the bridge and the guard removed (the cache is kept)."""
        if self.hosts_dir.exists():
            for path in sorted(self.hosts_dir.iterdir()):
                self.down(path.name)
        network.bridge_down()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = 0
        if finished or not _alive(pid):
            return
        time.sleep(0.1)


def _mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def _cgroup_pids(cgroup: Path) -> list[int]:
    pids: list[int] = []
    if not cgroup.is_dir():
        return pids
    for procs in cgroup.rglob("cgroup.procs"):
        try:
            pids.extend(int(p) for p in procs.read_text().split())
        except OSError:
            continue
    return pids


def _kill_cgroup(cgroup: Path) -> None:
    for _ in range(20):
        pids = _cgroup_pids(cgroup)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _remove_cgroup(cgroup: Path) -> None:
    if not cgroup.is_dir():
        return
    for path in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            path.rmdir()
    with contextlib.suppress(OSError):
        cgroup.rmdir()
