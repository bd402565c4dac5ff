"""Where a wave runs: ansible-playbook on this machine, or a job on AWX — one interface.

The orchestrator (rollout.py) keeps what only it can do (TLS verification, waves, the
failure budget, the state); a :class:`WaveRunner` answers three questions for it: which
hosts pass preflight, what happens when a wave is enrolled, and what would change in check
mode. The preflight itself is a :class:`Prober`: paramiko in-process by default, the ``ssh``
client with ``--probe ssh``; Windows hosts over pywinrm either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from acmefleet.fleet.inventory import FleetHost

if TYPE_CHECKING:
    from acmefleet.console.client import RemoteBackend
    from acmefleet.fleet.awx import AwxSettings
    from acmefleet.fleet.preflight import Probe
    from acmefleet.fleet.runner import PlayResult, ProgressFn
    from acmefleet.fleet.winrm_probe import WinrmContext

Line = Callable[[str], None]


class Prober(Protocol):
    """Preflight: per host, None if it is ready, else the problem (as people read it)."""

    def check(self, hosts: Sequence[FleetHost]) -> dict[str, str | None]: ...


@dataclass(frozen=True)
class SshProber:
    """The preflight (fleet/preflight.py): SSH over paramiko (``probe="ssh"``: the ``ssh``
    client), WinRM over pywinrm; ``parallel`` hosts at a time."""

    options: tuple[str, ...]
    probe: Probe = "paramiko"
    parallel: int = 32
    winrm: WinrmContext | None = None

    def check(self, hosts: Sequence[FleetHost]) -> dict[str, str | None]:
        from acmefleet.fleet.preflight import preflight

        checked = preflight(
            list(hosts),
            list(self.options),
            probe=self.probe,
            parallel=self.parallel,
            winrm=self.winrm,
        )
        return {
            h.name: (None if r.ok else r.problem or "failed")
            if (r := checked.get(h.name)) is not None
            else "no preflight result"
            for h in hosts
        }


@dataclass
class WaveContext:
    """What a wave needs from the run: the server, and the first wave's preparation."""

    extra_vars: dict[str, str]  # how the playbooks reach the server (ServerAccess)
    api: RemoteBackend | None  # the console API (local runs mint through it)
    prepared: set[str] = field(default_factory=set)  # hosts whose packages were installed
    unprepared: dict[str, str] = field(default_factory=dict)  # host -> why installing failed


@dataclass
class WaveRun:
    """What a runner did with a wave; hosts in ``errors`` never reached the playbook."""

    ran: list[FleetHost]
    result: PlayResult | None
    kids: dict[str, str] = field(default_factory=dict)  # host -> EAB kid minted here
    errors: dict[str, str] = field(default_factory=dict)
    eab_phase: tuple[float, float] | None = None  # when the EABs were minted


class WaveRunner(Protocol):
    """One place that runs Ansible for the roll-out."""

    name: str

    def ready(self, hosts: Sequence[FleetHost], line: Line) -> dict[str, str | None]:
        """Preflight: per host None (ready) or the problem."""
        ...

    def enrol(
        self, wave: Sequence[FleetHost], context: WaveContext, progress: ProgressFn
    ) -> WaveRun: ...

    def check(
        self, hosts: Sequence[FleetHost], extra_vars: dict[str, str], progress: ProgressFn
    ) -> PlayResult:
        """enroll.yml in check mode: what would change per host (nothing is minted)."""
        ...


@dataclass
class LocalRunner:
    """ansible-playbook here (fleet/runner.py); an EAB per host minted just before its wave
    (a 0600 vars file)."""

    inventory: Path
    prober: Prober
    name: str = "ansible-playbook"

    def ready(self, hosts: Sequence[FleetHost], line: Line) -> dict[str, str | None]:
        return self.prober.check(hosts)

    def enrol(
        self, wave: Sequence[FleetHost], context: WaveContext, progress: ProgressFn
    ) -> WaveRun:
        import time

        from acmefleet.console.client import ApiError
        from acmefleet.fleet.runner import run_playbook

        errors = {h.name: context.unprepared[h.name] for h in wave if h.name in context.unprepared}
        minted: dict[str, dict[str, str]] = {}
        started = time.time()
        for host in wave:
            if host.name in errors or context.api is None:
                continue
            try:
                credential = context.api.mint_eab(host.org, host.endpoint, days=1)
            except ApiError as exc:
                errors[host.name] = f"EAB: {exc}"
                continue
            minted[host.name] = {"kid": credential["kid"], "hmac_key": credential["hmac_key"]}
        minting = (started, time.time())
        ran = [h for h in wave if h.name in minted]
        result = (
            run_playbook(
                "enroll.yml",
                self.inventory,
                limit=[h.name for h in ran],
                extra_vars={
                    **context.extra_vars,
                    # the roles skip their apt run on hosts prepare.yml has just installed
                    "acmefleet_packages_installed": all(h.name in context.prepared for h in ran),
                    # Verified over TLS after the wave (Rollout): not on the host as well, where
                    # it would cost three remote tasks per host.
                    "acmefleet_verify_on_host": False,
                },
                secret_vars={"acmefleet_preminted_eab": minted},
                progress=progress,
            )
            if ran
            else None
        )
        kids = {name: value["kid"] for name, value in minted.items()}
        return WaveRun(ran, result, kids, errors, minting)

    def check(
        self, hosts: Sequence[FleetHost], extra_vars: dict[str, str], progress: ProgressFn
    ) -> PlayResult:
        from acmefleet.fleet.runner import run_playbook

        return run_playbook(
            "enroll.yml",
            self.inventory,
            limit=[h.name for h in hosts],
            # An empty credential per host: check mode mints nothing, and so needs neither
            # the console token nor a deployed server (the roles' check-mode path).
            extra_vars={
                **extra_vars,
                "acmefleet_preminted_eab": {h.name: {} for h in hosts},
            },
            progress=progress,
            check=True,
        )


@dataclass
class AwxRunner:
    """Each wave as one job of an AWX job template; the job mints each host's EAB itself."""

    settings: AwxSettings
    name: str = "AWX"

    def ready(self, hosts: Sequence[FleetHost], line: Line) -> dict[str, str | None]:
        # AWX's execution nodes reach the hosts, this machine may not: they report
        # unreachable hosts in the job's results, and the job mints nothing for them.
        line("preflight: left to AWX (its job reports unreachable hosts)")
        return {h.name: None for h in hosts}

    def _job(
        self, hosts: Sequence[FleetHost], progress: ProgressFn, job_type: str | None
    ) -> PlayResult:
        from acmefleet.fleet.awx import AwxController, AwxError
        from acmefleet.fleet.runner import PlayResult

        names = [h.name for h in hosts]
        try:
            with AwxController(self.settings) as awx:
                return awx.run_wave(names, {}, progress, job_type=job_type)
        except AwxError as exc:
            return PlayResult(failed={h: f"AWX: {exc}" for h in names}, rc=2)

    def enrol(
        self, wave: Sequence[FleetHost], context: WaveContext, progress: ProgressFn
    ) -> WaveRun:
        return WaveRun(list(wave), self._job(wave, progress, None))

    def check(
        self, hosts: Sequence[FleetHost], extra_vars: dict[str, str], progress: ProgressFn
    ) -> PlayResult:
        return self._job(hosts, progress, "check")
