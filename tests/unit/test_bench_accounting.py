"""benchmarks/accounting.py: process accounting records packed as the kernel writes them
(struct acct_v3), parsed back, and the benchmark's descendants picked out when pids wrap."""

from __future__ import annotations

from benchmarks import accounting
from benchmarks.accounting import Exited


def packed(
    command: str, pid: int, ppid: int, started: int, elapsed_s: float, cpu_ticks: int
) -> bytes:
    return accounting.RECORD.pack(
        0,  # ac_flag
        accounting.ACCT_V3,
        0,  # ac_tty
        0,  # ac_exitcode
        0,  # ac_uid
        0,  # ac_gid
        pid,
        ppid,
        started,  # ac_btime
        elapsed_s * accounting.TICKS_PER_SECOND,  # ac_etime
        cpu_ticks,  # ac_utime (comp_t: below 8192 the value itself)
        0,  # ac_stime
        0,
        0,
        0,
        0,
        0,
        0,
        command.encode(),
    )


def test_records_parse_back_with_their_lifetimes() -> None:
    data = packed("ssh", 200, 100, 1_000, 2.5, 37) + b"\0" * 10  # a torn tail is ignored
    (record,) = accounting.parse(data)
    assert record == Exited("ssh", 200, 100, 0.37, 1_000.0, 1_002.5)


def test_descendants_follow_lifetimes_when_pids_wrap() -> None:
    root = 100
    ours = [
        Exited("ansible-playboo", 300, root, 5.0, 1_000, 1_100),
        Exited("ssh", 301, 300, 0.1, 1_010, 1_011),
    ]
    reused = [
        # pid 300 again, a test host's process long after ours exited: not ours, nor its child
        Exited("dpkg", 300, 1, 1.0, 1_500, 1_510),
        Exited("sh", 305, 300, 0.2, 1_505, 1_506),
        # pid 300 once more, now with our ssh's pid as its parent's: matching by pid alone
        # went 300 -> 301 -> 300 -> ... for ever
        Exited("apt-get", 300, 301, 0.5, 2_000, 2_001),
    ]
    found = accounting.descendants(ours + reused, root)
    assert sorted(r.command for r in found) == ["ansible-playboo", "ssh"]
    assert accounting.by_kind(found) == {"ansible-playbook main": 5.0, "ssh": 0.1}
