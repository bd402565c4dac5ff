"""Running the machine's own tools (ip, nft, mount, ...) with clear errors."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

# Each host's systemd holds several inotify instances (about six here). The kernel's default
# cap per user, 128, stopped the 26th host of a fleet from booting (its sshd never answered);
# 1024 leaves room for about 160 hosts. Raised when lower, never lowered.
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
MIN_INOTIFY_INSTANCES = 1024


class LabError(RuntimeError):
    """A lab operation failed; the message says which command and why."""


def run(
    args: Sequence[str], *, check: bool = True, input_text: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            input=input_text,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{args[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(args[:3])} did not finish within {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LabError(
            f"{' '.join(args[:4])} failed: {detail[-1] if detail else result.returncode}"
        )
    return result


def ensure_inotify_instances(minimum: int = MIN_INOTIFY_INSTANCES) -> None:
    """Raise fs.inotify.max_user_instances to ``minimum`` if it is lower."""
    if int(INOTIFY_INSTANCES.read_text().strip()) < minimum:
        INOTIFY_INSTANCES.write_text(f"{minimum}\n")
