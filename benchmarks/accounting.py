"""The controller's CPU by process, from the kernel's process accounting (BSD acct, v3).

    with accounting() as records:
        ... run something ...
    by_kind(descendants(records(), os.getpid()))

Every process that exits while accounting is on leaves a record: its command name (15
characters), pid, parent pid, and its own user and system CPU (not its children's). The
benchmark keeps the records of its own descendants, so the test hosts' processes (and
anything else on the machine) are left out. The kernel keeps CPU in 10 ms ticks per
process, rounded down: thousands of short ``ssh`` clients come out a little low, which is
why the total of the records is shown beside the rusage total.

Needs ``accton`` (Debian package acct) and root.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

RECORD = struct.Struct("<BBHIIIIIIf8H16s")  # struct acct_v3, 64 bytes
TICKS_PER_SECOND = 100  # AHZ
ACCT_V3 = 3


@dataclass(frozen=True)
class Exited:
    command: str
    pid: int
    ppid: int
    cpu_s: float
    started: float  # seconds since the epoch, whole seconds (ac_btime)
    ended: float  # started + elapsed (ac_etime, in 1/AHZ s)


def _comp(value: int) -> int:
    """comp_t: a 13-bit mantissa and a base-8 exponent in the top three bits."""
    return (value & 0x1FFF) << (3 * (value >> 13))


def parse(data: bytes) -> list[Exited]:
    found = []
    for offset in range(0, len(data) - RECORD.size + 1, RECORD.size):
        fields = RECORD.unpack_from(data, offset)
        if fields[1] & 0x0F != ACCT_V3:
            continue
        pid, ppid, started = fields[6], fields[7], float(fields[8])
        utime, stime = _comp(fields[10]), _comp(fields[11])
        ended = started + fields[9] / TICKS_PER_SECOND
        command = fields[18].split(b"\0", 1)[0].decode(errors="replace")
        found.append(Exited(command, pid, ppid, (utime + stime) / TICKS_PER_SECOND, started, ended))
    return found


def descendants(records: Iterable[Exited], root: int) -> list[Exited]:
    """The records of ``root``'s descendants (``root`` runs throughout).

    Pids wrap within a run (pid_max is 32768 here, and every process of the machine is
    recorded, the test hosts' apt and dpkg included): a record is the child of the record with
    its parent pid whose lifetime contains its start (whole seconds, so one second of slack),
    and each record is taken once. Matching by pid alone once looped for ever on a 20-host run.
    """
    children: dict[int, list[Exited]] = {}
    for record in records:
        children.setdefault(record.ppid, []).append(record)
    found: list[Exited] = []
    taken: set[int] = set()
    todo: list[Exited | None] = [None]  # None: the root, alive for the whole window
    while todo:
        parent = todo.pop()
        for record in children.get(root if parent is None else parent.pid, []):
            if id(record) in taken:
                continue
            if parent is not None and not (
                parent.started - 1 <= record.started <= parent.ended + 1
            ):
                continue  # a process of an earlier or later owner of that pid
            taken.add(id(record))
            found.append(record)
            todo.append(record)
    return found


def kind(record: Exited, parent: str | None) -> str:
    """What a process was: Ansible's main process and its forked workers apart."""
    command = record.command
    if command.startswith("ansible-playboo"):
        return "ansible-playbook workers" if parent == command else "ansible-playbook main"
    if command.startswith("ansible-invento"):
        return "ansible-inventory"
    if command in ("ssh", "acmefleet"):
        return command
    if command.startswith("python") or command.startswith("AnsiballZ"):
        return "modules run on the controller"
    return "other"


def by_kind(records: list[Exited]) -> dict[str, float]:
    commands = {record.pid: record.command for record in records}
    totals: dict[str, float] = {}
    for record in records:
        name = kind(record, commands.get(record.ppid))
        totals[name] = totals.get(name, 0.0) + record.cpu_s
    return totals


@contextlib.contextmanager
def accounting() -> Iterator[Callable[[], list[Exited]]]:
    """Process accounting on for the block; yields a reader of what it recorded."""
    accton = shutil.which("accton")
    if accton is None:
        raise RuntimeError("accton is missing: apt-get install acct")
    directory = Path(tempfile.mkdtemp(prefix="bench-acct-"))
    path = directory / "pacct"
    path.touch(mode=0o600)
    subprocess.run([accton, str(path)], check=True, capture_output=True)
    stopped = False

    def read() -> list[Exited]:
        nonlocal stopped
        if not stopped:
            subprocess.run([accton, "off"], check=True, capture_output=True)
            stopped = True
        return parse(path.read_bytes())

    try:
        yield read
    finally:
        if not stopped:
            subprocess.run([accton, "off"], check=False, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
