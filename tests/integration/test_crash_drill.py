"""The crash drill, shortened: a killed ``server init`` and three kill -9 rounds under a small
load break no invariant, and the drill's checks do catch what a crash could leave behind.
On PostgreSQL: two replicas, each killed once under the load, then the database restarted,
break none either."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.postgres import postgres_available

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DRILL = ROOT / "benchmarks" / "crash_drill.py"


def load_drill() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_drill", DRILL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def run_drill(workdir: Path, *options: str) -> dict[str, Any]:
    """The drill with one private and one http-01 client, short delays, and ``options``;
    its JSON summary (the drill must exit 0: no violation)."""
    summary = workdir / "summary.json"
    command = [
        sys.executable,
        str(DRILL),
        "--clients",
        "1",
        "--public-clients",
        "1",
        "--min-delay",
        "0.5",
        "--max-delay",
        "1.5",
        "--validation-timeout",
        "6",
        "--workdir",
        str(workdir / "run"),
        "--json",
        str(summary),
        *options,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(summary.read_text())
    return result


@pytest.fixture(scope="module")
def drill() -> ModuleType:
    return load_drill()


@pytest.fixture(scope="module")
def drilled(
    drill: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], Path]]:
    """One kill of ``server init``, then three rounds with one private and one http-01
    client; the summary and the work dir."""
    workdir = tmp_path_factory.mktemp("crash-drill")
    summary = run_drill(workdir, "--rounds", "3", "--init-kills", "1")
    yield summary, workdir / "run"


def test_three_kills_break_no_invariant(
    drill: ModuleType, drilled: tuple[dict[str, Any], Path]
) -> None:
    summary, _ = drilled
    assert summary["rounds"] == summary["kills"] == 3
    assert summary["init_kills"]["kills"] == 1
    assert summary["violations"] == []
    assert summary["checks"] == {
        "per_round": len(drill.CHECKS),
        "passed": 3 * len(drill.CHECKS),
        "failed": 0,
    }
    for report in summary["per_round"]:
        assert sorted(report["passed"]) == sorted(drill.CHECKS), report
        assert report["failures"] == {}
        assert report["restart_s"] > 0  # the server came back after every kill
    certificates = summary["certificates"]
    assert certificates["received_before_a_kill"] + certificates["finished_after_a_restart"] > 0
    assert summary["orders_acknowledged"] > 0


def test_the_checks_catch_what_a_crash_could_leave(
    drill: ModuleType, drilled: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    """A copy of the drilled data dir, broken the ways a crash could break it: every check
    that looks at the data dir must say so (the drill is not vacuous)."""
    _, run = drilled
    original = run / "data"
    baseline = drill.data_files(original)
    data = tmp_path / "data"
    shutil.copytree(original, data)
    db_file = data / "acmefleet.db"
    assert drill.half_written(data, baseline) == []
    assert drill.eab_problems(db_file) == []
    assert not any(drill.order_problems(db_file).values())
    assert drill.audit_coverage_problems(db_file) == []
    assert drill.sqlite_problems(db_file) == []

    # Files: an atomic write's temporary file, an empty file, an init staging directory
    # beside the data dir, a CA file rewritten.
    (data / "ca" / ".issuer.pem.x1y2z3").write_bytes(b"-----BEGIN")
    (data / "tls" / "server.pem").write_bytes(b"")
    (tmp_path / ".data.init-abc123").mkdir()
    (data / "ca-bundle.pem").write_bytes((data / "ca-bundle.pem").read_bytes()[:-10])
    files = "\n".join(drill.half_written(data, baseline))
    assert "leftover data/ca/.issuer.pem.x1y2z3" in files
    assert "leftover .data.init-abc123" in files
    assert "empty file tls/server.pem" in files
    assert "ca-bundle.pem changed" in files
    assert "tls/server.pem changed" in files

    con = sqlite3.connect(db_file)
    with con:
        first, second, third = con.execute(
            "SELECT kid, account_id FROM eab_credentials WHERE account_id IS NOT NULL LIMIT 3"
        ).fetchall()
        # A credential consumed (HMAC erased) but bound to nobody; another bound to a
        # second account too.
        con.execute(
            "UPDATE eab_credentials SET account_id = NULL, bound_at = NULL WHERE kid = ?",
            (first[0],),
        )
        con.execute(
            "UPDATE eab_credentials SET account_id = ? WHERE kid = ?", (third[1], second[0])
        )
        order_id, cert_id, serial = con.execute(
            "SELECT o.id, o.certificate_id, c.serial_hex FROM orders o "
            "JOIN certificates c ON c.id = o.certificate_id LIMIT 1"
        ).fetchone()
        other = con.execute(
            "SELECT id FROM orders WHERE finalization = 'valid' AND id != ? LIMIT 1",
            (order_id,),
        ).fetchone()[0]
        # An order stuck processing with its certificate; another valid without one.
        con.execute("UPDATE orders SET finalization = 'processing' WHERE id = ?", (order_id,))
        con.execute("UPDATE orders SET certificate_id = NULL WHERE id = ?", (other,))
        # A certificate whose audit event is gone.
        con.execute(
            "DELETE FROM audit_events WHERE action = 'certificate.issue' AND target = ?",
            (serial,),
        )
    con.close()

    eab = "\n".join(drill.eab_problems(db_file))
    assert f"EAB {first[0]}: HMAC erased but bound to no account" in eab
    assert f"account {first[1]}: its credential {first[0]} is not bound" in eab
    assert f"account {third[1]} bound by 2 credentials" in eab
    assert f"account {second[1]}: its credential {second[0]} is not bound" in eab
    found = drill.order_problems(db_file)
    assert found["orders_none_processing"] == [f"order {order_id} is processing"]
    linked = "\n".join(found["orders_valid_have_certificate"])
    assert f"processing order {order_id} has certificate rows ['{cert_id}']" in linked
    assert f"valid order {other}: certificate None" in linked
    assert f"certificate {serial}: no certificate.issue event" in drill.audit_coverage_problems(
        db_file
    )
    verify = drill.run_cli(["admin", "audit", "verify", "--data-dir", str(data)])
    assert verify.returncode == 1, verify.stdout + verify.stderr

    # A database file cut short: not whole pages, and SQLite finds the damage.
    with db_file.open("r+b") as handle:
        handle.truncate(db_file.stat().st_size - 1000)
    assert any("not whole" in problem for problem in drill.sqlite_problems(db_file))


@pytest.fixture(scope="module")
def drilled_postgres(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two replicas on PostgreSQL: each killed once (replica-0, then replica-1), then the
    database restarted, under one private and one http-01 client; the summary."""
    if not postgres_available():
        pytest.fail("PostgreSQL is needed (scripts/quickstart setup installs it, as root)")
    workdir = tmp_path_factory.mktemp("crash-drill-postgres")
    return run_drill(
        workdir,
        "--database",
        "postgresql",
        "--replicas",
        "2",
        "--rounds",
        "3",
        "--database-restarts",
        "1",
        "--init-kills",
        "0",
    )


def test_replica_kills_and_a_database_restart_break_no_invariant(
    drill: ModuleType, drilled_postgres: dict[str, Any]
) -> None:
    summary = drilled_postgres
    assert summary["database"] == "postgresql" and summary["replicas"] == 2
    assert (summary["rounds"], summary["kills"], summary["database_restarts"]) == (3, 2, 1)
    assert summary["violations"] == []
    rounds = summary["per_round"]
    assert [(r["kind"], r["target"]) for r in rounds] == [
        ("replica_kill", "replica-0"),
        ("replica_kill", "replica-1"),
        ("database_restart", "postgresql"),
    ]
    for report in rounds:
        # Every check of its kind ran and passed: no challenge left processing once the
        # survivor (or, after the database restart, the replicas) had had their deadline.
        assert sorted(report["passed"]) == sorted(drill.round_checks(report["kind"])), report
        assert report["failures"] == {}
        assert report["restart_s"] > 0  # the killed replica came back; the replicas healed
    ran = summary["checks_ran"]
    assert ran == {
        "replica_kill": list(drill.round_checks("replica_kill")),
        "database_restart": list(drill.round_checks("database_restart")),
    }
    # What only applies to SQLite's file is said to be skipped; the rest runs on PostgreSQL.
    assert set(summary["checks_skipped"]) == {"crash_state_integrity", "database_integrity"}
    for name in (
        "challenges_resolved_in_deadline",
        "orders_none_processing",
        "orders_valid_have_certificate",
        "certificates_downloadable",
        "eab_bindings_consistent",
        "audit_chain_verifies",
        "accounts_acknowledged_exist",
        "orders_acknowledged_exist",
    ):
        assert name in ran["replica_kill"] and name in ran["database_restart"]
    assert "survivor_serves" in ran["replica_kill"]
    assert "replicas_heal" in ran["database_restart"]
    assert summary["checks"]["failed"] == 0
    assert summary["checks"]["passed"] == sum(len(drill.round_checks(r["kind"])) for r in rounds)
    # The clients did meet a dead replica and the database away, and got over both.
    retries = summary["client_retries"]
    assert retries.get("refused", 0) > 0 and retries.get("503", 0) > 0, retries
    certificates = summary["certificates"]
    assert certificates["received_before_a_kill"] + certificates["finished_after_a_restart"] > 0
    assert summary["orders_acknowledged"] > 0
    # Read from PostgreSQL at the end: every acknowledged order is there (the checks read
    # the replicas' database, not an empty one), none left processing.
    stored = summary["orders_by_finalization"]
    assert sum(stored.values()) >= summary["orders_acknowledged"], stored
    assert "processing" not in stored
