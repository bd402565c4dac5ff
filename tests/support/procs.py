"""Process helpers for test servers: loopback ports, readiness, CPU time, shutdown."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: SIGTERM the child if the spawning thread dies (e.g. a crashed test run).

    Spawn from the main thread: the signal fires when the *thread* that forked exits.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct currently-free TCP ports on ``host``."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]


def tls_context(ca_bundle: str | Path) -> ssl.SSLContext:
    """SSL context trusting only ``ca_bundle``."""
    return ssl.create_default_context(cafile=str(ca_bundle))


def wait_for_url(
    url: str,
    ca_bundle: str | Path,
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 20.0,
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    with httpx.Client(verify=tls_context(ca_bundle), timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with status {proc.returncode} before ready")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last_error = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s (last error: {last_error!r})")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The comm field may contain spaces/parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _tree_pids(root: int) -> set[int]:
    """``root``, its process group members and all of its descendants."""
    parents: dict[int, int] = {}
    group: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        parents[int(entry)] = int(fields[1])  # ppid
        if int(fields[2]) == root:  # pgrp
            group.add(int(entry))
    found = {root} | group
    changed = True
    while changed:
        children = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= children
        changed = bool(children)
    return found


def tree_cpu_seconds(root: int) -> float:
    """utime+stime (+reaped children's) of ``root``'s process group and descendants."""
    ticks = 0
    for pid in _tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            # fields[11:15] = utime, stime, cutime, cstime (stat fields 14-17)
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLK_TCK


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def terminate_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group led by ``proc``; SIGKILL whatever is left after ``timeout``."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        _signal_group(proc.pid, signal.SIGCONT)  # a stopped process only sees SIGTERM when resumed
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout)
