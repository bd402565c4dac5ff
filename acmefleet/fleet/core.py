"""The roll-out's decisions as pure functions: no hosts, no files, no clock of their own.

``acmefleet rollout`` parses its options into :class:`RolloutOptions` at the command line's
edge (every option is checked before anything runs); the orchestrator (rollout.py) does the
I/O and asks this module what to do: which hosts a resumed run may leave alone, which waves it
continues, how much of a wave's failure budget is left, whether a host's enrolment counts, when
to stop, and how long the rest of a wave will take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from acmefleet.fleet import waves as wave_specs
from acmefleet.fleet.waves import Budget

if TYPE_CHECKING:  # the AWX client (httpx) is imported only when it is used
    from acmefleet.fleet.awx import AwxSettings
    from acmefleet.fleet.state import HostOutcome, RolloutState
    from acmefleet.fleet.tls import ServedCertificate

DEFAULT_WAVES = ("1", "10%", "100%")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class RolloutOptions:
    """What the operator asked for, parsed and checked (``parse_options``)."""

    inventory: Path
    limit: str | None = None
    # None: the default, or with --resume what the resumed run was given
    waves: tuple[str, ...] | None = None
    max_fail: Budget | None = None
    resume: bool = False
    check: bool = False
    deploy_server: bool = True
    state_dir: Path | None = None
    min_days: int = 30
    report_json: Path | None = None
    report_html: Path | None = None  # besides report.html in the state directory
    api_url: str | None = None
    token_file: Path | None = None
    ca_bundle: Path | None = None
    # More CAs the hosts' certificates may chain to (an endpoint relayed to an upstream CA)
    trust_bundle: Path | None = None
    awx: AwxSettings | None = None  # hand each wave to this AWX instead of running it here

    @property
    def state_path(self) -> Path:
        return self.directory / "rollout-state.json"

    @property
    def directory(self) -> Path:
        return self.state_dir or self.inventory.resolve().parent / ".acmefleet"


def parse_options(
    inventory: Path,
    *,
    waves: str | None = None,
    max_fail: str | None = None,
    **values: object,
) -> RolloutOptions:
    """The options as values; a bad one raises WaveSpecError or BudgetSpecError."""
    sizes = tuple(wave_specs.parse_sizes(waves)) if waves is not None else None
    budget = wave_specs.parse_budget(max_fail) if max_fail is not None else None
    return RolloutOptions(inventory=inventory, waves=sizes, max_fail=budget, **values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    """The wave sizes and budget a run uses: given, else resumed, else the defaults."""

    waves: tuple[str, ...]
    max_fail: Budget


def effective_settings(options: RolloutOptions, state: RolloutState | None) -> Settings:
    saved_waves = tuple(state.waves.split(",")) if state and state.waves else None
    saved_budget = (
        wave_specs.parse_budget(state.max_fail) if state and state.max_fail is not None else None
    )
    return Settings(
        options.waves or saved_waves or DEFAULT_WAVES,
        options.max_fail or saved_budget or Budget(),
    )


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def recorded_done(
    outcome: HostOutcome | None, names: Sequence[str], min_days: int, now: datetime
) -> bool:
    """Resume: a host the state records done, for these names, with enough days left.

    Such a host is left alone without probing it again: the previous run verified its
    certificate over TLS, and the record says how long that certificate is good for.
    """
    if outcome is None or not outcome.done or sorted(outcome.names) != sorted(names):
        return False
    not_after = parse_time(outcome.not_after)
    return not_after is not None and not_after - now >= timedelta(days=min_days)


def enrolment_error(
    run_error: str | None, served: ServedCertificate, names: Sequence[str], now: datetime
) -> str | None:
    """Why a host's enrolment does not count (None: it does): the run's error, else TLS."""
    if run_error is not None:
        return run_error
    if not served.is_good(tuple(names), 0, now):
        return f"verification: {served.problem or 'names or validity do not match'}"
    return None


def over_budget(failures: int, budget: Budget, wave_size: int) -> bool:
    """The stop decision: a wave with more failures than its budget stops the roll-out."""
    return failures > budget.allowed(wave_size)


@dataclass(frozen=True)
class PlannedWave:
    number: int  # 1-based, as planned (a resumed run keeps the numbers)
    hosts: tuple[str, ...]  # the hosts this run handles in this wave
    size: int  # the wave's size as planned: the budget is a share of it
    spent: int = 0  # failures already counted against the budget (a resumed run)


def plan_waves(
    todo: Sequence[str],
    settings: Settings,
    previous: RolloutState | None,
) -> tuple[list[PlannedWave], list[list[str]]]:
    """The waves this run goes through, and the plan to save.

    A fresh run splits the hosts to enrol by the wave sizes (the first wave is the canary).
    A resumed run keeps the saved plan: each host stays in its wave, the run starts at the
    first wave that still has a host to enrol (the one that stopped the roll-out), no new
    canary is made, and the failures of that wave's hosts that this run does not retry (left
    out by --limit) stay spent. Hosts new to the plan join its last wave.
    """
    if previous is None or not previous.plan:
        split = wave_specs.split(list(todo), ",".join(settings.waves))
        planned = [
            PlannedWave(number, tuple(hosts), len(hosts))
            for number, hosts in enumerate(split, start=1)
        ]
        return planned, [list(w) for w in split]
    plan = [list(w) for w in previous.plan]
    known = {h for wave in plan for h in wave}
    plan[-1].extend(h for h in todo if h not in known)
    wanted = set(todo)
    planned = []
    for number, wave in enumerate(plan, start=1):
        hosts = tuple(h for h in wave if h in wanted)
        if not hosts:
            continue
        spent = sum(
            1
            for h in wave
            if h not in wanted
            and (o := previous.hosts.get(h)) is not None
            and o.status == "failed"
            and o.wave == number
        )
        planned.append(PlannedWave(number, hosts, len(wave), spent))
    return planned, plan


def eta(elapsed: float, finished: int, left: int) -> float | None:
    """Seconds until a wave's last host finishes, at the pace of the hosts finished so far.

    Hosts of a wave run in parallel, so the pace is hosts per second of wall time, not the
    mean of their durations. None until a host has finished.
    """
    if left <= 0:
        return 0.0
    if finished <= 0 or elapsed <= 0:
        return None
    return left * elapsed / finished
