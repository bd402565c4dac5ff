"""``acmefleet rollout``: verify over TLS, preflight, deploy the server, enrol in waves.

What ``Rollout.run()`` does:

1. every host is checked over TLS first (against the server's CA bundle if the controller
   has it already, else the system's trust store): one that serves a valid certificate for
   its names with at least ``min_days`` left is done ("skipped"), and Ansible never runs on
   it; if all are, the run ends there;
2. the others get a parallel preflight (with AWX, left to its job); hosts that fail it are
   reported and spend nothing;
3. with ``--check``, the server settings are looked up but nothing is deployed, enroll.yml
   runs in check mode on the hosts that passed preflight (nothing is minted), and they are
   reported as "would-enrol" with the tasks that would change; the run ends there;
4. the ACME server is deployed (role acme_server) while the first wave installs its stacks'
   packages (playbooks/prepare.yml): the two slowest steps overlap. With
   ``--server-exists``, or no host in acme_servers, neither runs: the server given by
   ``--api-url``/``--token-file``/``--ca-bundle`` (or the inventory's variables) is used;
5. waves (the first is the canary): a fresh EAB per host and the enrolment playbook through
   ansible-playbook (with AWX, one job per wave that mints the EABs itself), unused EABs of
   failed hosts revoked, every host verified over TLS; a wave over its failure budget stops
   the roll-out, and the hosts of later waves are "not-attempted";
6. when the run ends, the outcomes are saved (the state ``--resume`` starts from), the
   report page is written (``report.html`` in the state directory, and ``--report-html``;
   for ``--check`` and a run its failure budget stopped too), and the outcomes are returned:
   the command prints them as the report (and writes it as JSON).

With ``--resume``, hosts the saved state records done (for the same names, with at least
``min_days`` left on the recorded certificate) are left alone without a probe, and the others
continue in the saved plan from the first wave that still has a host to enrol, with the
saved ``--waves``/``--max-fail`` unless given again (core.plan_waves). With ``--check``,
step 3 runs enroll.yml in check mode on the ready hosts and reports what would change.

The decisions are pure functions (core.py); where Ansible runs is a runners.WaveRunner
(ansible-playbook here, or AWX); ``load`` does the I/O that a Rollout starts from.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from acmefleet.console.client import ApiError, RemoteBackend
from acmefleet.fleet import core, report_html, tls
from acmefleet.fleet.core import RolloutOptions
from acmefleet.fleet.inventory import Fleet, FleetHost, InventoryError, load_fleet
from acmefleet.fleet.preflight import Probe
from acmefleet.fleet.progress import Progress
from acmefleet.fleet.runner import PlayResult, run_playbook
from acmefleet.fleet.runners import AwxRunner, LocalRunner, SshProber, WaveContext, WaveRunner
from acmefleet.fleet.settings import inventory_path_var, ssh_options
from acmefleet.fleet.ssh_probe import DEFAULT_PARALLEL
from acmefleet.fleet.state import HostOutcome, Phase, RolloutState
from acmefleet.fleet.winrm_probe import WinrmContext

__all__ = ["Rollout", "RolloutError", "RolloutOptions", "ServerAccess", "load"]


class RolloutError(RuntimeError):
    """The roll-out cannot start (server, connection settings); exit code 2."""


@dataclass
class ServerAccess:
    """How the roll-out reaches the ACME server's console API (and how its playbooks do)."""

    api_url: str
    token_file: Path
    ca_bundle: Path

    def extra_vars(self) -> dict[str, str]:
        return {
            "acmefleet_api_url": self.api_url,
            "acmefleet_console_token_file": str(self.token_file),
            "acmefleet_ca_bundle": str(self.ca_bundle),
        }

    def console(self) -> RemoteBackend:
        return RemoteBackend(
            self.api_url, self.token_file.read_text().strip(), ca_bundle=self.ca_bundle
        )


def load(
    options: RolloutOptions,
    console: Console,
    *,
    probe: Probe = "paramiko",
    probe_parallel: int = DEFAULT_PARALLEL,
) -> Rollout:
    """Read what a roll-out starts from: the fleet (ansible-inventory) and, with --resume,
    the saved state; choose where Ansible runs and how its preflight reaches the hosts."""
    fleet = load_fleet(options.inventory, options.limit)
    previous = (
        RolloutState.load(options.state_path, str(options.inventory.resolve()))
        if options.resume
        else None
    )
    runner: WaveRunner = (
        AwxRunner(options.awx)
        if options.awx is not None
        # Hosts of one inventory share their SSH settings; per-host overrides are rare.
        else LocalRunner(
            options.inventory,
            SshProber(
                tuple(ssh_options(fleet.hosts[0])),
                probe,
                probe_parallel,
                WinrmContext(options.inventory.resolve().parent, fleet.all_vars),
            ),
        )
    )
    planned = Rollout(options, console, fleet, runner, previous)
    trust = planned.trust_bundle()
    if trust is not None and not trust.is_file():  # before any host is touched
        raise InventoryError(f"trust bundle {trust}: no such file")
    if not (options.deploy_server and fleet.servers):
        planned.configured_access()  # no server to deploy: its settings must be complete now
    return planned


@dataclass
class Rollout:
    options: RolloutOptions
    console: Console
    fleet: Fleet
    runner: WaveRunner
    previous: RolloutState | None = None  # the saved state, with --resume
    state: RolloutState = field(init=False)
    settings: core.Settings = field(init=False)
    prepared: set[str] = field(init=False, default_factory=set)  # packages installed this run
    phases: dict[str, dict[str, list[float]]] = field(init=False, default_factory=dict)
    started: float | None = field(init=False, default=None)  # epoch seconds, for the report
    ended: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        inventory = str(self.options.inventory.resolve())
        self.settings = core.effective_settings(self.options, self.previous)
        # Hosts this run does not handle keep their saved outcomes (and wave plan).
        kept = dict(self.previous.hosts) if self.previous else {}
        self.state = RolloutState(
            inventory,
            kept,
            list(self.previous.plan) if self.previous else [],
            ",".join(self.settings.waves),
            str(self.settings.max_fail),
        )

    # -- access to the ACME server

    def _path_var(self, name: str) -> Path | None:
        return inventory_path_var(self.fleet, self.options.inventory, name)

    def deploy_server(self, progress: Progress) -> ServerAccess:
        hosts = ", ".join([*self.fleet.servers, *self.fleet.server_support])
        progress.line(f"deploying the ACME server on {hosts} (playbook acme_server.yml)")
        result = run_playbook(
            "acme_server.yml",
            self.options.inventory,
            limit=[*self.fleet.servers, *self.fleet.server_support],
            extra_vars=self._server_vars(),
            progress=lambda h, k, t: None,
        )
        return self._deployed(result, result.failed)

    def _server_vars(self) -> dict[str, str]:
        """Where the server's deployment leaves what the roll-out needs on this machine."""
        directory = self.options.directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        server = self.fleet.servers[0]
        return {
            # The replicas' database password lives beside the token (0700 directory).
            "acme_server_controller_dir": str(directory),
            "acme_database_controller_dir": str(directory),
            "acme_server_admin_token_dest": str(directory / f"{server}-admin-token"),
            "acme_server_ca_bundle_dest": str(directory / f"{server}-ca-bundle.pem"),
        }

    def _deployed(self, result: PlayResult, failed: Mapping[str, str]) -> ServerAccess:
        """The access to the server a run deployed; ``failed``: its server hosts' failures."""
        if failed or (result.rc != 0 and not result.failed):
            detail = (
                "; ".join(f"{h}: {m}" for h, m in failed.items())
                or f"rc {result.rc}: {result.tail}"
            )
            raise RolloutError(f"deploying the ACME server failed: {detail}")
        server = self.fleet.servers[0]
        base_url = self.fleet.hostvars.get(server, {}).get("acme_server_base_url")
        if not base_url:
            raise RolloutError(f"{server}: acme_server_base_url is not set in the inventory")
        directory = self.options.directory
        return ServerAccess(
            str(base_url),
            directory / f"{server}-admin-token",
            directory / f"{server}-ca-bundle.pem",
        )

    def _known_ca_bundle(self) -> Path | None:
        """The server's CA bundle if it is on the controller already (None: system trust)."""
        candidates = [self.options.ca_bundle, self._path_var("acmefleet_ca_bundle")]
        if self.fleet.servers:
            candidates.append(self.options.directory / f"{self.fleet.servers[0]}-ca-bundle.pem")
        return next((c for c in candidates if c is not None and c.exists()), None)

    def trust_bundle(self) -> Path | None:
        """More CAs the hosts' certificates may chain to (relayed endpoints):
        --trust-bundle, else the inventory's acmefleet_trust_bundle."""
        return self.options.trust_bundle or self._path_var("acmefleet_trust_bundle")

    def _hosts_bundle(self, server_bundle: Path | None) -> Path | None:
        """What the hosts' certificates are verified against: the server's CAs, and the
        trust bundle for relayed endpoints."""
        return tls.hosts_bundle(server_bundle, self.trust_bundle(), self.options.directory)

    def server_access(self, progress: Progress) -> ServerAccess:
        if self.options.deploy_server and self.fleet.servers and not self.options.check:
            return self.deploy_server(progress)
        if self.options.deploy_server and self.fleet.servers and self.options.check:
            server = self.fleet.servers[0]
            directory = self.options.directory
            base = self.fleet.hostvars.get(server, {}).get("acme_server_base_url")
            if base:
                return ServerAccess(
                    str(base),
                    directory / f"{server}-admin-token",
                    directory / f"{server}-ca-bundle.pem",
                )
        return self.configured_access()

    def configured_access(self) -> ServerAccess:
        """The server given by --api-url/--token-file/--ca-bundle or the inventory."""
        api_url = self.options.api_url or self.fleet.all_vars.get("acmefleet_api_url")
        token = self.options.token_file or self._path_var("acmefleet_console_token_file")
        bundle = self.options.ca_bundle or self._path_var("acmefleet_ca_bundle")
        if not api_url or token is None or bundle is None:
            raise RolloutError(
                "no ACME server: put one in the group acme_servers, or give "
                "--api-url, --token-file and --ca-bundle"
            )
        return ServerAccess(str(api_url), token, bundle)

    # -- helpers

    def _phase(
        self, hosts: Iterable[FleetHost | str], phase: str, start: float, end: float
    ) -> None:
        for host in hosts:
            name = host if isinstance(host, str) else host.name
            self.phases.setdefault(name, {})[phase] = [round(start, 3), round(end, 3)]

    def _outcome(self, host: FleetHost, status: str, **values: Any) -> HostOutcome:
        outcome = HostOutcome(
            host.name,
            host.stack,
            status,  # type: ignore[arg-type]
            list(host.names),
            phases=dict(self.phases.get(host.name, {})),
            **values,
        )
        self.state.hosts[host.name] = outcome
        return outcome

    def _verified(
        self, host: FleetHost, seen: tls.ServedCertificate, status: str, **values: Any
    ) -> HostOutcome:
        return self._outcome(
            host,
            status,
            serial=seen.serial,
            issuer=seen.issuer,
            not_after=seen.not_after.strftime(core.TIME_FORMAT) if seen.not_after else None,
            **values,
        )

    # -- the run

    def run(self) -> list[HostOutcome]:
        self.started = time.time()
        try:
            with Progress(self.console) as progress:
                todo = self._to_enrol(progress)
                # checks the server settings; deploys nothing
                access = self._check_access(progress) if todo and self.options.check else None
                if todo:
                    ready = self._ready(todo, progress)
                    if access is not None:
                        self._check(access, ready, progress)
                    elif ready:
                        self._enrol(ready, progress)
        except (RolloutError, ApiError) as exc:
            # The server could not be deployed or reached: no state is saved (--resume starts
            # from the last complete run), but the page says how far this one got and why.
            self.ended = time.time()
            self.write_reports(list(self.state.hosts.values()), aborted=str(exc))
            raise
        self.ended = time.time()
        if not self.options.check:  # a dry run leaves the state --resume reads as it was
            self.state.save(self.options.state_path)
        # with --resume, hosts left out by --limit keep their outcomes (in the report too)
        outcomes = list(self.state.hosts.values())
        self.write_reports(outcomes)
        return outcomes

    def report_facts(self, aborted: str | None = None) -> report_html.RunFacts:
        return report_html.RunFacts(
            inventory=self.state.inventory,
            started=self.started,
            ended=self.ended,
            plan=tuple(tuple(wave) for wave in self.state.plan),
            waves=self.state.waves,
            max_fail=self.state.max_fail,
            check=self.options.check,
            min_days=self.options.min_days,
            aborted=aborted,
        )

    def write_reports(self, outcomes: list[HostOutcome], aborted: str | None = None) -> None:
        """report.html in the state directory, always; and where --report-html asked.

        A page that cannot be written is said, not raised: the run's outcome (the table, the
        exit code, the saved state) matters more than its page.
        """
        page = report_html.render(outcomes, self.report_facts(aborted), tls.now())
        targets = [self.options.directory / "report.html"]
        if self.options.report_html is not None:
            targets.append(self.options.report_html)
        for target in targets:
            try:
                # the state directory (0700: it keeps the console token) may be new (--check)
                self.options.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                write_atomically(target, page)
            except OSError as exc:
                self.console.print(f"[yellow]could not write the report {target}: {exc}[/]")

    def _to_enrol(self, progress: Progress) -> list[FleetHost]:
        """Verify first, against the CA bundle a previous run fetched (if any): a fleet that
        serves valid certificates everywhere needs no Ansible at all. With --resume, hosts
        the state records done are left as they are, without a probe."""
        now = tls.now()
        recorded = self.previous.hosts if self.previous else {}
        hosts: list[FleetHost] = []
        for host in self.fleet.hosts:
            if self.previous and core.recorded_done(
                recorded.get(host.name), host.names, self.options.min_days, now
            ):
                progress.host(host.name, "skipped", "recorded done (--resume)")
            else:
                hosts.append(host)
        started = time.time()
        served = tls.probe_all(hosts, self._hosts_bundle(self._known_ca_bundle()))
        self._phase(hosts, "tls", started, time.time())
        todo: list[FleetHost] = []
        for host in hosts:
            seen = served[host.name]
            if seen.is_good(host.names, self.options.min_days, now):
                self._verified(host, seen, "skipped")
                progress.host(host.name, "skipped", "serves a valid certificate")
            else:
                todo.append(host)
        kept = len(self.fleet.hosts) - len(hosts)
        progress.line(
            f"{len(hosts) - len(todo)} host(s) already serve a valid certificate"
            + (f", {kept} recorded done" if self.previous else "")
            + f"; {len(todo)} to enrol"
        )
        return todo

    def _ready(self, todo: list[FleetHost], progress: Progress) -> list[FleetHost]:
        """The hosts that pass preflight; the others are reported and spend nothing."""
        started, wall = time.time(), time.monotonic()
        problems = self.runner.ready(todo, progress.line)
        self._phase(todo, "preflight", started, time.time())
        progress.line(f"preflight of {len(todo)} host(s): {time.monotonic() - wall:.1f} s")
        ready: list[FleetHost] = []
        for host in todo:
            problem = problems.get(host.name, "no preflight result")
            if problem is not None:
                self._outcome(
                    host, "failed", error=f"preflight: {problem}", failed_phase="preflight"
                )
                progress.host(host.name, "failed", f"preflight: {problem}")
            else:
                ready.append(host)
        return ready

    def _check_access(self, progress: Progress) -> ServerAccess:
        access = self.server_access(progress)
        if not access.ca_bundle.is_file():
            # The roles copy the bundle from here to the hosts, in check mode too.
            raise RolloutError(
                f"--check: the ACME server's CA bundle {access.ca_bundle} is not on this "
                "controller yet (the server was never deployed from here): deploy it first "
                "(playbooks/acme_server.yml), or give --ca-bundle"
            )
        return access

    def _check(self, access: ServerAccess, ready: list[FleetHost], progress: Progress) -> None:
        """Dry run: enroll.yml in check mode on the ready hosts; nothing is deployed or minted."""
        if not ready:
            return
        progress.wave(1, 1, [h.name for h in ready])
        started = time.time()
        result = self.runner.check(ready, access.extra_vars(), progress.event)
        self._phase(ready, "enrol", started, time.time())
        for host in ready:
            error = result.failed.get(host.name)
            if error is None and result.rc != 0 and host.name not in result.ok:
                error = f"rc {result.rc}: {result.tail}" if result.tail else f"rc {result.rc}"
            if error is not None:
                self._outcome(host, "failed", error=f"check: {error}", failed_phase="enrol")
                progress.host(host.name, "failed", f"check: {error}")
                continue
            would = result.changed_tasks.get(host.name, [])
            self._outcome(
                host,
                "would-enrol",
                changes=result.changed.get(host.name, len(would)),
                would_change=would,
            )
            progress.host(host.name, "done", f"{len(would)} task(s) would change")

    def _enrol(self, ready: list[FleetHost], progress: Progress) -> None:
        planned, plan = core.plan_waves([h.name for h in ready], self.settings, self.previous)
        self.state.plan = plan
        by_name = self.fleet.by_name()
        first = [by_name[n] for n in planned[0].hosts]
        access, unprepared = self._connect_and_prepare(progress, first)
        last = max(w.number for w in planned)
        with access.console() as api:
            context = WaveContext(access.extra_vars(), api, self.prepared, unprepared)
            for index, wave in enumerate(planned):
                hosts = [by_name[n] for n in wave.hosts]
                failures = wave.spent + self._wave(
                    access, context, hosts, wave.number, last, progress
                )
                budget = self.settings.max_fail.allowed(wave.size)
                if core.over_budget(failures, self.settings.max_fail, wave.size):
                    progress.line(
                        f"wave {wave.number}: {failures} failure(s) > budget {budget}; "
                        "stopping the roll-out"
                    )
                    for later in planned[index + 1 :]:
                        for name in later.hosts:
                            self._outcome(
                                by_name[name],
                                "not-attempted",
                                wave=later.number,
                                error="stopped: failure budget",
                            )
                    return

    def _connect_and_prepare(
        self, progress: Progress, first_wave: list[FleetHost]
    ) -> tuple[ServerAccess, dict[str, str]]:
        """Deploy the server while the first wave installs its packages (nothing is minted).

        Returns the access to the server and, per host of the first wave whose installation
        failed, the error: such a host gets no EAB. The others are remembered as prepared.
        """
        if not (self.options.deploy_server and self.fleet.servers):
            return self.server_access(progress), {}
        started, wall = time.time(), time.monotonic()
        if len(self.fleet.servers) == 1 and not self.fleet.server_support:
            access, prepared = self._deploy_and_prepare_at_once(progress, first_wave)
        else:
            progress.line(
                f"meanwhile installing the stacks' packages on wave 1 ({len(first_wave)} host(s))"
            )
            with ThreadPoolExecutor(max_workers=1) as pool:
                preparing = pool.submit(
                    run_playbook,
                    "prepare.yml",
                    self.options.inventory,
                    limit=[h.name for h in first_wave],
                    progress=progress.event,
                )
                access = self.deploy_server(progress)
                prepared = preparing.result()
        ended = time.time()
        for host in first_wave:  # each host's own package tasks, else the preparation's span
            self._phase([host], "packages", *prepared.packages.get(host.name, (started, ended)))
        progress.line(f"server deployed and wave 1 prepared: {time.monotonic() - wall:.1f} s")
        unprepared = {h: f"installing the packages: {m}" for h, m in prepared.failed.items()}
        if prepared.rc != 0 and not unprepared:
            unprepared = {h.name: f"installing the packages: {prepared.tail}" for h in first_wave}
        self.prepared = {h.name for h in first_wave if h.name not in unprepared}
        return access, unprepared

    def _deploy_and_prepare_at_once(
        self, progress: Progress, first_wave: list[FleetHost]
    ) -> tuple[ServerAccess, PlayResult]:
        """One server host: its deployment and wave 1's packages in one ansible-playbook run
        (playbooks/rollout_start.yml), each host at its own pace. Returns the access to the
        server and the run's result for the wave's hosts."""
        server = self.fleet.servers[0]
        progress.line(
            f"deploying the ACME server on {server} (playbook rollout_start.yml); meanwhile "
            f"installing the stacks' packages on wave 1 ({len(first_wave)} host(s))"
        )
        result = run_playbook(
            "rollout_start.yml",
            self.options.inventory,
            limit=[server, *(h.name for h in first_wave)],
            extra_vars=self._server_vars(),
            progress=lambda h, k, t: progress.event(h, k, t) if h != server else None,
        )
        server_failed = {h: m for h, m in result.failed.items() if h == server}
        access = self._deployed(result, server_failed)
        result.failed = {h: m for h, m in result.failed.items() if h != server}
        return access, result

    def _wave(
        self,
        access: ServerAccess,
        context: WaveContext,
        wave: list[FleetHost],
        number: int,
        total: int,
        progress: Progress,
    ) -> int:
        """Enrol one wave and verify it; returns its failures."""
        progress.wave(number, total, [h.name for h in wave])
        context.prepared = self.prepared
        wall, started = time.monotonic(), time.time()
        run = self.runner.enrol(wave, context, progress.event)
        ended = time.time()
        duration = time.monotonic() - wall
        if run.eab_phase is not None:
            # every host a credential was asked for, those the console refused included
            minted_for = [h for h in wave if h.name not in context.unprepared]
            self._phase(minted_for, "eab", *run.eab_phase)
        self._phase(run.ran, "enrol", run.eab_phase[1] if run.eab_phase else started, ended)
        for name, span in (run.result.packages if run.result else {}).items():
            # installed inside enroll.yml (hosts prepare.yml did not install): within issuance
            self._phase([name], "packages", *span)
        served = tls.probe_all(run.ran, self._hosts_bundle(access.ca_bundle))
        self._phase(run.ran, "verify", ended, time.time())
        now = tls.now()
        failures = 0
        for host in wave:
            if host.name in run.errors:
                failures += 1
                phase: Phase = "packages" if host.name in context.unprepared else "eab"
                self._outcome(
                    host, "failed", wave=number, error=run.errors[host.name], failed_phase=phase
                )
                progress.host(host.name, "failed", run.errors[host.name])
        for host in run.ran:
            kid = run.kids.get(host.name)
            run_error = run.result.failed.get(host.name) if run.result else "not run"
            error = core.enrolment_error(run_error, served[host.name], host.names, now)
            changes = run.result.changed.get(host.name) if run.result else None
            if error is None:
                if kid and context.api is not None:
                    # A host that had an account with its directory already did not use the
                    # credential minted for it (enroll.yml's own account check): revoke it.
                    self._revoke_unused(context.api, kid)
                self._verified(
                    host,
                    served[host.name],
                    "enrolled",
                    duration=duration,
                    wave=number,
                    eab_kid=kid,
                    changes=changes,
                )
                progress.host(host.name, "done", f"serial {served[host.name].serial}")
                continue
            failures += 1
            revoked = self._revoke_unused(context.api, kid) if kid and context.api else ""
            self._outcome(
                host,
                "failed",
                duration=duration,
                wave=number,
                eab_kid=kid,
                changes=changes,
                error=error + revoked,
                failed_phase=(
                    "verify"
                    if run_error is None
                    else "packages"
                    if run.result and host.name in run.result.packages_failed
                    else "enrol"
                ),
            )
            progress.host(host.name, "failed", error)
        progress.line(f"wave {number}/{total}: {time.monotonic() - wall:.1f} s")
        return failures

    @staticmethod
    def _revoke_unused(api: RemoteBackend, kid: str) -> str:
        try:
            if api.get_eab(kid)["status"] == "unused":
                api.revoke_eab(kid)
                return " (its unused EAB was revoked)"
        except ApiError as exc:
            return f" (revoking its EAB failed: {exc})"
        return ""


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader (a browser,
    a web server publishing the page) never sees half a page. Mode 0644: the page holds no
    secret (no HMAC key or token reaches an outcome; error texts are masked), so it may be
    served or mailed."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
