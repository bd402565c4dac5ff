"""Real OpenSSH servers on loopback ports, for the SSH probes' tests and benchmark.

Each server is Debian's ``/usr/sbin/sshd`` (package openssh-server) in the foreground with
its own configuration in a temporary directory: its host key, an authorized_keys file
there (not the user's), key authentication only. ``known_hosts`` lines for the controller
are written as ssh writes them for a non-standard port (``[127.0.0.1]:PORT``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import die_with_parent, free_ports

SSHD = Path("/usr/sbin/sshd")


def keygen(path: Path, comment: str = "acmefleet-test") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )
    return path


@contextlib.contextmanager
def throwaway_user() -> Iterator[str]:
    """A fresh non-root account with a login shell and no sudo rule, removed afterwards.

    Needs root (the suite runs as root). The name is random so two runs never share it.
    """
    name = f"afprobe{secrets.token_hex(3)}"
    subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/bash", name],
        check=True,
        capture_output=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


@dataclass
class LoopbackSshd:
    """``count`` sshd processes on 127.0.0.1 sharing one host key and one authorized key."""

    root: Path
    ports: list[int]
    host_key: Path
    client_key: Path
    processes: list[subprocess.Popen[bytes]]

    def known_hosts(self, path: Path, key: Path | None = None) -> Path:
        """A known_hosts file naming every server with ``key`` (default: the real one)."""
        kind, blob = (key or self.host_key).with_suffix(".pub").read_text().split()[:2]
        path.write_text("".join(f"[127.0.0.1]:{p} {kind} {blob}\n" for p in self.ports))
        return path

    def ssh_options(self, known_hosts: Path, key: Path | None = None) -> list[str]:
        """What ``settings.ssh_options`` gives for an inventory pointing at these servers."""
        return [
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-i",
            str(key or self.client_key),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=5",
        ]


def _config(root: Path, port: int, host_key: Path, authorized: Path) -> Path:
    config = root / f"sshd_config.{port}"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {root}/sshd.{port}.pid\n"
        f"AuthorizedKeysFile {authorized}\n"
        # the temporary directory is not the user's home: its modes are not the user's
        "StrictModes no\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        # PAM: a locked password ("!") must not refuse a key login (OpenSSH refuses
        # locked accounts itself only without PAM)
        "UsePAM yes\n"
        "PermitRootLogin prohibit-password\n"
        "MaxStartups 200\n"
        "LogLevel ERROR\n"
    )
    return config


@contextlib.contextmanager
def loopback_sshd(count: int = 1) -> Iterator[LoopbackSshd]:
    if not SSHD.exists():
        raise RuntimeError(f"{SSHD} is missing: install openssh-server (scripts/quickstart)")
    # sshd's privilege separation directory (Debian's unit makes it as RuntimeDirectory).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    # A directory every user may read: sshd reads authorized_keys as the logged-in user.
    root = Path(tempfile.mkdtemp(prefix="acmefleet-sshd-"))
    root.chmod(0o755)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        host_key = keygen(root / "host_ed25519", "host")
        client_key = keygen(root / "client_ed25519")
        authorized = root / "authorized_keys"
        authorized.write_text(client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o644)
        ports = free_ports(count)
        for port in ports:
            config = _config(root, port, host_key, authorized)
            processes.append(
                subprocess.Popen(
                    [str(SSHD), "-D", "-e", "-f", str(config)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    preexec_fn=die_with_parent,  # noqa: PLW1509 - from the test's main thread
                )
            )
        for port, process in zip(ports, processes, strict=True):
            _wait(port, process)
        yield LoopbackSshd(root, ports, host_key, client_key, processes)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            if process.stderr is not None:
                process.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"sshd on port {port} exited: {err.strip()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd on port {port} did not listen within {timeout} s")


def is_root() -> bool:
    return os.geteuid() == 0
