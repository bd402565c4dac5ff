"""The roll-out core without root or hosts: options, resume, budgets, the stop, progress.

The command-line tests run ``acmefleet rollout`` in-process on an inventory whose hosts are
loopback listeners that count connections: "no host touched" is measured, not assumed.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import certifi
import pytest
from click.testing import CliRunner
from rich.console import Console

from acmefleet.fleet import core
from acmefleet.fleet.cli import rollout
from acmefleet.fleet.core import PlannedWave, Settings
from acmefleet.fleet.progress import LAST_TASK, Progress, bar_text
from acmefleet.fleet.state import HostOutcome, RolloutState
from acmefleet.fleet.tls import ServedCertificate
from acmefleet.fleet.waves import Budget, BudgetSpecError, WaveSpecError, parse_budget

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime(core.TIME_FORMAT)


# -- options


@pytest.mark.parametrize("spec", ["some", "-1", "150%", "1.5", ""])
def test_bad_budgets_are_refused(spec: str) -> None:
    with pytest.raises(BudgetSpecError):
        parse_budget(spec)


def test_options_are_values() -> None:
    options = core.parse_options(Path("inv.yml"), waves="1, 50%", max_fail="25%", check=True)
    assert options.waves == ("1", "50%")
    assert options.max_fail == Budget(25, percent=True)
    assert options.max_fail.allowed(10) == 2 and str(options.max_fail) == "25%"
    assert options.check and options.waves is not None
    assert core.parse_options(Path("inv.yml")).waves is None  # default, or resumed
    with pytest.raises(WaveSpecError):
        core.parse_options(Path("inv.yml"), waves="0")
    with pytest.raises(BudgetSpecError):
        core.parse_options(Path("inv.yml"), max_fail="many")


def test_settings_given_else_resumed_else_defaults() -> None:
    saved = RolloutState("inv", waves="1,50%", max_fail="2")
    plain = core.parse_options(Path("inv.yml"))
    assert core.effective_settings(plain, None) == Settings(core.DEFAULT_WAVES, Budget())
    assert core.effective_settings(plain, saved) == Settings(("1", "50%"), Budget(2))
    given = core.parse_options(Path("inv.yml"), waves="100%", max_fail="0")
    assert core.effective_settings(given, saved) == Settings(("100%",), Budget(0))


# -- verdicts and the stop decision


def outcome(status: str, names: list[str], days: int | None, wave: int = 1) -> HostOutcome:
    not_after = stamp(NOW + timedelta(days=days)) if days is not None else None
    return HostOutcome("web1", "lego_nginx", status, names, not_after=not_after, wave=wave)  # type: ignore[arg-type]


def test_recorded_done_needs_done_same_names_and_days_left() -> None:
    names = ["web1.example.com"]
    assert core.recorded_done(outcome("enrolled", names, 90), names, 30, NOW)
    assert core.recorded_done(outcome("skipped", names, 30), names, 30, NOW)
    assert not core.recorded_done(outcome("enrolled", names, 29), names, 30, NOW)
    assert not core.recorded_done(outcome("failed", names, 90), names, 30, NOW)
    assert not core.recorded_done(outcome("enrolled", ["other.example.com"], 90), names, 30, NOW)
    assert not core.recorded_done(outcome("enrolled", names, None), names, 30, NOW)
    assert not core.recorded_done(None, names, 30, NOW)


def served(good: bool, names: tuple[str, ...] = ("web1.example.com",)) -> ServedCertificate:
    return ServedCertificate(
        "web1", True, good, None if good else "self-signed", names, "CA", "01", NOW + timedelta(1)
    )


def test_enrolment_error_prefers_the_run_then_tls() -> None:
    names = ["web1.example.com"]
    assert core.enrolment_error(None, served(True), names, NOW) is None
    assert core.enrolment_error("Reload nginx: failed", served(True), names, NOW) == (
        "Reload nginx: failed"
    )
    assert core.enrolment_error(None, served(False), names, NOW) == "verification: self-signed"
    wrong = core.enrolment_error(None, served(True, ("x.example.com",)), names, NOW)
    assert wrong == "verification: names or validity do not match"


def test_over_budget_is_strictly_more_than_allowed() -> None:
    assert not core.over_budget(0, Budget(), 5)
    assert core.over_budget(1, Budget(), 5)
    assert not core.over_budget(1, Budget(1), 5)
    assert core.over_budget(2, Budget(25, percent=True), 5)  # 25 % of 5 is 1
    assert not core.over_budget(2, Budget(25, percent=True), 8)


# -- waves, fresh and resumed


def test_a_fresh_plan_splits_the_hosts_with_a_canary() -> None:
    planned, plan = core.plan_waves(
        [f"h{i}" for i in range(10)], Settings(("1", "50%"), Budget()), None
    )
    assert [(w.number, len(w.hosts), w.size, w.spent) for w in planned] == [
        (1, 1, 1, 0),
        (2, 4, 4, 0),
        (3, 5, 5, 0),
    ]
    assert plan == [list(w.hosts) for w in planned]


def stopped_run() -> RolloutState:
    """Wave 2 had two failures over a budget of 1: wave 3 was not attempted."""
    state = RolloutState("inv", plan=[["a"], ["b", "c", "d"], ["e", "f"]], waves="1,50%")
    for name, status, wave in [
        ("a", "enrolled", 1),
        ("b", "enrolled", 2),
        ("c", "failed", 2),
        ("d", "failed", 2),
        ("e", "not-attempted", 3),
        ("f", "not-attempted", 3),
    ]:
        state.hosts[name] = HostOutcome(name, "lego_nginx", status, wave=wave)  # type: ignore[arg-type]
    return state


def test_a_resumed_plan_continues_from_the_failed_wave_and_keeps_the_spent_budget() -> None:
    previous = stopped_run()
    # d is left out (--limit): its failure stays spent in wave 2; g is new to the plan
    planned, plan = core.plan_waves(["c", "e", "f", "g"], Settings(("1",), Budget(1)), previous)
    assert planned == [
        PlannedWave(2, ("c",), 3, spent=1),
        PlannedWave(3, ("e", "f", "g"), 3, spent=0),
    ]
    assert plan == [["a"], ["b", "c", "d"], ["e", "f", "g"]]
    # one more failure in wave 2 is over the budget of 1: the roll-out would stop there
    assert core.over_budget(planned[0].spent + 1, Budget(1), planned[0].size)
    # retried hosts do not count their old failures
    again, _ = core.plan_waves(["c", "d", "e", "f"], Settings(("1",), Budget(1)), previous)
    assert again[0] == PlannedWave(2, ("c", "d"), 3, spent=0)


def test_a_resumed_run_without_a_plan_plans_afresh() -> None:
    planned, _ = core.plan_waves(["a", "b"], Settings(("1",), Budget()), RolloutState("inv"))
    assert [w.hosts for w in planned] == [("a",), ("b",)]


# -- the state file


def test_state_keeps_plan_settings_and_phases(tmp_path: Path) -> None:
    state = stopped_run()
    state.max_fail = "1"
    state.hosts["a"].phases = {"tls": [1.0, 2.0], "enrol": [3.0, 9.5]}
    path = tmp_path / "state.json"
    state.save(path)
    loaded = RolloutState.load(path, "inv")
    assert loaded == state
    raw = json.loads(path.read_text())
    raw["hosts"]["a"]["from_a_newer_version"] = 1  # unknown keys are ignored
    path.write_text(json.dumps(raw))
    assert RolloutState.load(path, "inv").hosts["a"] == state.hosts["a"]


# -- progress


def test_eta_at_the_pace_of_finished_hosts() -> None:
    assert core.eta(30.0, 0, 10) is None
    assert core.eta(30.0, 3, 6) == 60.0
    assert core.eta(30.0, 9, 0) == 0.0


def test_bar_text() -> None:
    assert bar_text(3, 1, 8, 80.0, width=8) == "━━━━──── 3 done · 1 failed · 4 left · ETA 1:20"
    assert bar_text(0, 0, 4, None, width=4) == "──── 0 done · 0 failed · 4 left · ETA ?"


def test_progress_lines_carry_the_wave_bar() -> None:
    out = StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with Progress(console) as progress:
        progress.wave(1, 2, ["web1", "web2", "web3"])
        progress.event("web1", "ok", f"{LAST_TASK} (from the controller)")
        progress.event("web2", "failed", "Reload nginx")
        progress.host("web1", "done", "serial 01")
        bar = progress.bar()
    assert "1 done · 1 failed · 1 left · ETA" in bar and "ETA ?" not in bar
    assert "web1: done - serial 01  [" in out.getvalue()


# -- the command line: checked before anything runs, and --resume


@contextmanager
def listener() -> Iterator[tuple[int, list[int]]]:
    """A loopback port that counts the connections made to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    count = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            count[0] += 1
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], count
    finally:
        stop.set()
        thread.join()
        server.close()


def inventory(path: Path, ports: dict[str, int]) -> Path:
    hosts = "".join(
        f"        {name}:\n"
        "          ansible_host: 127.0.0.1\n"
        f"          ansible_port: {port}\n"
        f"          acmefleet_tls_port: {port}\n"
        f"          acmefleet_names: [{name}.example.com]\n"
        for name, port in ports.items()
    )
    path.write_text(
        "all:\n  vars:\n    acmefleet_endpoint: private\n    acmefleet_org: org\n"
        f"  children:\n    lego_nginx:\n      hosts:\n{hosts}"
    )
    return path


def test_a_bad_max_fail_is_refused_before_any_host_is_touched(tmp_path: Path) -> None:
    with listener() as (port, connections):
        source = inventory(tmp_path / "fleet.yml", {"web1": port})
        result = CliRunner().invoke(
            rollout, ["-i", str(source), "--max-fail", "some", "--server-exists"]
        )
    assert result.exit_code == 2, result.output
    assert "--max-fail: 'some'" in result.output
    assert connections == [0]
    assert not (tmp_path / ".acmefleet").exists()  # no state written


def test_missing_server_settings_are_refused_before_any_host_is_touched(tmp_path: Path) -> None:
    with listener() as (port, connections):
        source = inventory(tmp_path / "fleet.yml", {"web1": port})
        result = CliRunner().invoke(rollout, ["-i", str(source), "--server-exists"])
        missing = CliRunner().invoke(
            rollout, ["-i", str(source), "--token-file", str(tmp_path / "nope")]
        )
        (tmp_path / "bundle.pem").write_text("not a certificate\n")
        bad_bundle = CliRunner().invoke(
            rollout, ["-i", str(source), "--ca-bundle", str(tmp_path / "bundle.pem")]
        )
    assert result.exit_code == 2 and "no ACME server" in result.output, result.output
    assert missing.exit_code == 2 and "--token-file" in missing.output
    assert bad_bundle.exit_code == 2 and "no certificate" in bad_bundle.output
    assert connections == [0]
    assert not (tmp_path / ".acmefleet").exists()


def test_a_bad_report_html_path_is_refused_before_any_host_is_touched(tmp_path: Path) -> None:
    with listener() as (port, connections):
        source = inventory(tmp_path / "fleet.yml", {"web1": port})
        missing = CliRunner().invoke(
            rollout,
            ["-i", str(source), "--report-html", str(tmp_path / "nope" / "r.html")],
        )
        directory = CliRunner().invoke(rollout, ["-i", str(source), "--report-html", str(tmp_path)])
    assert missing.exit_code == 2, missing.output
    assert "--report-html" in missing.output and "does not exist" in missing.output
    assert directory.exit_code == 2, directory.output
    assert connections == [0]
    assert not (tmp_path / ".acmefleet").exists()  # no state, no report.html


def server_options(tmp_path: Path) -> list[str]:
    """An existing server's settings (nothing listens there: no host gets that far)."""
    (tmp_path / "token").write_text("x\n")
    (tmp_path / "bundle.pem").write_text(Path(certifi.where()).read_text())
    return [
        "--server-exists",
        "--api-url",
        "https://127.0.0.1:9",
        "--token-file",
        str(tmp_path / "token"),
        "--ca-bundle",
        str(tmp_path / "bundle.pem"),
    ]


def test_check_writes_the_report_page_but_no_state(tmp_path: Path) -> None:
    """--check leaves the state --resume reads alone, and still writes report.html."""
    with listener() as (port, _):
        source = inventory(tmp_path / "fleet.yml", {"web1": port})
        result = CliRunner().invoke(
            rollout, ["-i", str(source), "--check", *server_options(tmp_path)]
        )
    page = tmp_path / ".acmefleet" / "report.html"
    assert page.exists(), (result.output, result.exception)
    assert not (tmp_path / ".acmefleet" / "rollout-state.json").exists()
    text = page.read_text()
    assert "--check: nothing was changed" in text and 'data-host="web1"' in text
    assert "preflight: " in text  # web1 failed preflight: nothing there speaks SSH
    assert oct(page.stat().st_mode & 0o777) == "0o644"


def test_a_run_the_server_stops_still_writes_the_page(tmp_path: Path) -> None:
    """--check with a server in the inventory that was never deployed from here: the run
    stops (exit 2) after the TLS check, saves no state, and its page says why."""
    with listener() as (port, _):
        source = inventory(tmp_path / "fleet.yml", {"web1": port})
        source.write_text(
            source.read_text()
            + "    acme_servers:\n      hosts:\n        srv:\n          ansible_host: 127.0.0.1\n"
            + "          acme_server_base_url: https://127.0.0.1:9\n"
        )
        result = CliRunner().invoke(rollout, ["-i", str(source), "--check"])
    assert result.exit_code == 2 and "CA bundle" in result.output, result.output
    assert not (tmp_path / ".acmefleet" / "rollout-state.json").exists()
    page = (tmp_path / ".acmefleet" / "report.html").read_text()
    assert '<p class="stopped aborted">The run stopped: --check: the ACME server' in page


def test_resume_leaves_hosts_recorded_done_alone(tmp_path: Path) -> None:
    """web1 is recorded enrolled with 90 days left: not probed, not run, kept as it was.
    web2 is recorded enrolled with 5 days left: it is checked again (and fails preflight
    here: nothing listens like an SSH server)."""
    now = datetime.now(UTC)
    with listener() as (port1, seen1), listener() as (port2, seen2):
        source = inventory(tmp_path / "fleet.yml", {"web1": port1, "web2": port2})
        state = RolloutState(str(source.resolve()), plan=[["web1"], ["web2"]], waves="1,100%")
        for name, days in (("web1", 90), ("web2", 5)):
            state.hosts[name] = HostOutcome(
                name,
                "lego_nginx",
                "enrolled",
                [f"{name}.example.com"],
                serial=f"serial-{name}",
                not_after=stamp(now + timedelta(days=days)),
                wave=1 if name == "web1" else 2,
            )
        state.save(tmp_path / ".acmefleet" / "rollout-state.json")
        report = tmp_path / "report.json"
        page = tmp_path / "page.html"
        result = CliRunner().invoke(
            rollout,
            [
                "-i",
                str(source),
                "--resume",
                *server_options(tmp_path),
                "--report",
                str(report),
                "--report-html",
                str(page),
            ],
        )
    assert report.exists(), (result.output, result.exception)
    rows = {r["host"]: r for r in json.loads(report.read_text())}
    assert seen1 == [0], result.output  # web1 was neither probed nor preflighted
    assert rows["web1"]["status"] == "enrolled" and rows["web1"]["serial"] == "serial-web1"
    assert seen2[0] >= 1  # web2 was checked again
    assert rows["web2"]["status"] == "failed" and "preflight" in str(rows["web2"]["error"])
    assert result.exit_code == 1
    saved = RolloutState.load(tmp_path / ".acmefleet" / "rollout-state.json", "")
    assert saved.plan == [["web1"], ["web2"]] and saved.waves == "1,100%"
    # the page: written where asked and in the state directory, the same, naming both hosts
    html = (tmp_path / ".acmefleet" / "report.html").read_text()
    assert page.read_text() == html
    assert 'data-host="web1"' in html and 'data-host="web2"' in html
    assert "serial-web1" in html  # kept from the state, with its certificate
    assert saved.hosts["web2"].failed_phase == "preflight"
    assert '<rect class="bar phase-preflight failed"' in html
