"""The soak run of benchmarks/soak.py in short: issuances at concurrency 8 for 20 s while
slow clients and a header flood attack the same server. The full run (10 minutes at
concurrency 32) and its figures are in docs/security.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def test_short_soak_has_no_hang_no_5xx_and_an_intact_store(tmp_path: Path) -> None:
    report_file = tmp_path / "soak.json"
    run = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--duration",
            "20",
            "--concurrency",
            "8",
            "--slow-clients",
            "6",
            "--json",
            str(report_file),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert report_file.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["issued"] > 0
    assert report["hangs"] == 0 and report["server_errors_5xx"] == 0, report["error_samples"]
    assert report["other_errors"] == 0, report["error_samples"]
    assert report["stuck_threads"] == 0
    attack = report["attack"]
    assert attack["flood_requests"] > 0 and attack["flood_unexpected"] == 0, attack
    assert attack["slow_closed_by_server"] > 0  # the header deadline cut the drippers
    assert report["sqlite_integrity"] == "ok" and report["audit_chain_intact"]
    assert report["certificates_missing"] == 0
    assert run.returncode == 0
