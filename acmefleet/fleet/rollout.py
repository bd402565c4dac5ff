"""``acmefleet rollout``: verify over TLS, preflight, deploy the server, enrol in waves.

What ``Rollout.run()`` does:

1. every host is checked over TLS first (against the server's CA bundle if the controller
   has it already, else the system's trust store): one that serves a valid certificate for
   its names with at least ``min_days`` left is done ("skipped"), and Ansible never runs on
   it; if all are, the run ends there;
2. the others get a parallel preflight (with AWX, left to its job); hosts that fail it are
   reported and spend nothing;
3. with ``--check``, the server settings are looked up but nothing is deployed, and the
   hosts that passed preflight are reported as "would-enrol"; the run ends there;
4. the ACME server is deployed (role acme_server) while the first wave installs its stacks'
   packages (playbooks/prepare.yml): the two slowest steps overlap. With
   ``--server-exists``, or no host in acme_servers, neither runs: the server given by
   ``--api-url``/``--token-file``/``--ca-bundle`` (or the inventory's variables) is used;
5. waves (the first is the canary): a fresh EAB per host and the enrolment playbook through
   ansible-runner (with AWX, one job per wave that mints the EABs itself), unused EABs of
   failed hosts revoked, every host verified over TLS; a wave over its failure budget stops
   the roll-out, and the hosts of later waves are "not-attempted";
6. when the run ends, the outcomes are saved (the state ``--resume`` starts from) and
   returned: the command prints them as the report (and writes it as JSON).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from acmefleet.console.client import ApiError, RemoteBackend
from acmefleet.fleet import tls, waves
from acmefleet.fleet.awx import AwxController, AwxError, AwxSettings
from acmefleet.fleet.inventory import Fleet, FleetHost, load_fleet
from acmefleet.fleet.preflight import preflight
from acmefleet.fleet.progress import Progress
from acmefleet.fleet.runner import PlayResult, run_playbook
from acmefleet.fleet.settings import inventory_path_var, ssh_options
from acmefleet.fleet.state import HostOutcome, RolloutState


class RolloutError(RuntimeError):
    """The roll-out cannot start (server, connection settings); exit code 2."""


@dataclass
class RolloutOptions:
    inventory: Path
    limit: str | None = None
    waves: str = "1,10%,100%"
    max_fail: str | None = None
    resume: bool = False
    check: bool = False
    deploy_server: bool = True
    state_dir: Path | None = None
    min_days: int = 30
    report_json: Path | None = None
    api_url: str | None = None
    token_file: Path | None = None
    ca_bundle: Path | None = None
    awx: AwxSettings | None = None  # hand each wave to this AWX instead of running it here

    @property
    def state_path(self) -> Path:
        return self.directory / "rollout-state.json"

    @property
    def directory(self) -> Path:
        return self.state_dir or self.inventory.resolve().parent / ".acmefleet"


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


@dataclass
class Rollout:
    options: RolloutOptions
    console: Console
    fleet: Fleet = field(init=False)
    state: RolloutState = field(init=False)
    prepared: set[str] = field(init=False, default_factory=set)  # packages installed this run

    def __post_init__(self) -> None:
        self.fleet = load_fleet(self.options.inventory, self.options.limit)
        inventory = str(self.options.inventory.resolve())
        self.state = (
            RolloutState.load(self.options.state_path, inventory)
            if self.options.resume
            else RolloutState(inventory)
        )

    # -- access to the ACME server

    def _path_var(self, name: str) -> Path | None:
        return inventory_path_var(self.fleet, self.options.inventory, name)

    def deploy_server(self, progress: Progress) -> ServerAccess:
        directory = self.options.directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        server = self.fleet.servers[0]
        progress.line(f"deploying the ACME server on {server} (role acme_server)")
        result = run_playbook(
            "acme_server.yml",
            self.options.inventory,
            limit=list(self.fleet.servers),
            extra_vars={
                "acme_server_admin_token_dest": str(directory / f"{server}-admin-token"),
                "acme_server_ca_bundle_dest": str(directory / f"{server}-ca-bundle.pem"),
            },
            progress=lambda h, k, t: None,
        )
        if result.failed or result.rc != 0:
            detail = (
                "; ".join(f"{h}: {m}" for h, m in result.failed.items())
                or f"rc {result.rc}: {result.tail}"
            )
            raise RolloutError(f"deploying the ACME server failed: {detail}")
        base_url = self.fleet.hostvars.get(server, {}).get("acme_server_base_url")
        if not base_url:
            raise RolloutError(f"{server}: acme_server_base_url is not set in the inventory")
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

    def _outcome(self, host: FleetHost, status: str, **values: Any) -> HostOutcome:
        outcome = HostOutcome(host.name, host.stack, status, list(host.names), **values)  # type: ignore[arg-type]
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
            not_after=seen.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if seen.not_after else None,
            **values,
        )

    # -- the run

    def run(self) -> list[HostOutcome]:
        with Progress(self.console) as progress:
            hosts = list(self.fleet.hosts)
            # Verify first, against the CA bundle a previous run fetched (if any): a fleet
            # that serves valid certificates everywhere needs no Ansible at all.
            bundle = self._known_ca_bundle()
            served = tls.probe_all(hosts, bundle)
            now = tls.now()
            todo: list[FleetHost] = []
            for host in hosts:
                seen = served[host.name]
                if seen.is_good(host.names, self.options.min_days, now):
                    self._verified(host, seen, "skipped")
                    progress.host(host.name, "skipped", "serves a valid certificate")
                else:
                    todo.append(host)
            progress.line(
                f"{len(hosts) - len(todo)} host(s) already serve a valid certificate;"
                f" {len(todo)} to enrol"
            )
            if not todo:
                self.state.save(self.options.state_path)
                return list(self.state.hosts.values())
            ready = self._ready(todo, progress)
            if self.options.check:
                self.server_access(progress)  # checks the server settings; deploys nothing
                for host in ready:
                    self._outcome(host, "would-enrol")
            elif ready:
                planned = waves.split(ready, self.options.waves)
                access, unprepared = self._connect_and_prepare(progress, planned[0])
                self._waves(access, planned, unprepared, progress)
        self.state.save(self.options.state_path)
        return list(self.state.hosts.values())

    def _ready(self, todo: list[FleetHost], progress: Progress) -> list[FleetHost]:
        """The hosts that pass preflight; the others are reported and spend nothing."""
        if self.options.awx is not None:
            # AWX's execution nodes reach the hosts, this machine may not: they report
            # unreachable hosts in the job's results, and the job mints nothing for them.
            progress.line("preflight: left to AWX (its job reports unreachable hosts)")
            return list(todo)
        started = time.monotonic()
        checked = preflight(todo, self._ssh_options_for(todo))
        progress.line(f"preflight of {len(checked)} host(s): {time.monotonic() - started:.1f} s")
        ready: list[FleetHost] = []
        for host in todo:
            found = checked.get(host.name)
            if found is None or not found.ok:
                problem = found.problem if found else "no preflight result"
                self._outcome(host, "failed", error=f"preflight: {problem}")
                progress.host(host.name, "failed", f"preflight: {problem}")
            else:
                ready.append(host)
        return ready

    @staticmethod
    def _ssh_options_for(hosts: list[FleetHost]) -> list[str]:
        # Hosts of one inventory share their SSH settings; per-host overrides are rare.
        return ssh_options(hosts[0]) if hosts else []

    def _connect_and_prepare(
        self, progress: Progress, first_wave: list[FleetHost]
    ) -> tuple[ServerAccess, dict[str, str]]:
        """Deploy the server while the first wave installs its packages (nothing is minted).

        Returns the access to the server and, per host of the first wave whose installation
        failed, the error: such a host gets no EAB. The others are remembered as prepared.
        """
        if not (self.options.deploy_server and self.fleet.servers):
            return self.server_access(progress), {}
        started = time.monotonic()
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
            prepared: PlayResult = preparing.result()
        progress.line(f"server deployed and wave 1 prepared: {time.monotonic() - started:.1f} s")
        unprepared = {h: f"installing the packages: {m}" for h, m in prepared.failed.items()}
        if prepared.rc != 0 and not unprepared:
            unprepared = {h.name: f"installing the packages: {prepared.tail}" for h in first_wave}
        self.prepared = {h.name for h in first_wave if h.name not in unprepared}
        return access, unprepared

    def _waves(
        self,
        access: ServerAccess,
        planned: list[list[FleetHost]],
        unprepared: dict[str, str],
        progress: Progress,
    ) -> None:
        with access.console() as api:
            for number, wave in enumerate(planned, start=1):
                failures = self._wave(access, api, wave, number, len(planned), unprepared, progress)
                budget = waves.failure_budget(self.options.max_fail, len(wave))
                if failures > budget:
                    progress.line(
                        f"wave {number}: {failures} failure(s) > budget {budget}; "
                        "stopping the roll-out"
                    )
                    for later in planned[number:]:
                        for host in later:
                            self._outcome(host, "not-attempted", error="stopped: failure budget")
                    return

    def _wave(
        self,
        access: ServerAccess,
        api: RemoteBackend,
        wave: list[FleetHost],
        number: int,
        total: int,
        unprepared: dict[str, str],
        progress: Progress,
    ) -> int:
        progress.wave(number, total, [h.name for h in wave])
        started = time.monotonic()
        minted: dict[str, dict[str, str]]
        result: PlayResult | None
        if self.options.awx is not None:
            runnable, minted, result = wave, {}, self._hand_to_awx(self.options.awx, wave, progress)
        else:
            runnable, minted, result = self._run_here(
                access, api, wave, number, unprepared, progress
            )
        duration = time.monotonic() - started
        served = tls.probe_all(runnable, access.ca_bundle)
        now = tls.now()
        failures = len(wave) - len(runnable)
        for host in runnable:
            kid = minted[host.name]["kid"] if host.name in minted else None
            error = result.failed.get(host.name) if result else "not run"
            seen = served[host.name]
            if error is None and not seen.is_good(host.names, 0, now):
                error = f"verification: {seen.problem or 'names or validity do not match'}"
            if error is None:
                if kid:
                    # A host that had an account with its directory already did not use the
                    # credential minted for it (enroll.yml's own account check): revoke it.
                    self._revoke_unused(api, kid)
                self._verified(host, seen, "enrolled", duration=duration, wave=number, eab_kid=kid)
                progress.host(host.name, "done", f"serial {seen.serial}")
                continue
            failures += 1
            self._outcome(
                host,
                "failed",
                duration=duration,
                wave=number,
                eab_kid=kid,
                error=error + (self._revoke_unused(api, kid) if kid else ""),
            )
            progress.host(host.name, "failed", error)
        progress.line(f"wave {number}/{total}: {time.monotonic() - started:.1f} s")
        return failures

    def _run_here(
        self,
        access: ServerAccess,
        api: RemoteBackend,
        wave: list[FleetHost],
        number: int,
        unprepared: dict[str, str],
        progress: Progress,
    ) -> tuple[list[FleetHost], dict[str, dict[str, str]], PlayResult | None]:
        """Mint an EAB per host, then run enroll.yml here with them in a 0600 vars file."""
        minted: dict[str, dict[str, str]] = {}
        for host in wave:
            if host.name in unprepared:
                self._outcome(host, "failed", wave=number, error=unprepared[host.name])
                progress.host(host.name, "failed", unprepared[host.name])
                continue
            try:
                credential = api.mint_eab(host.org, host.endpoint, days=1)
            except ApiError as exc:
                self._outcome(host, "failed", wave=number, error=f"EAB: {exc}")
                progress.host(host.name, "failed", f"EAB: {exc}")
                continue
            minted[host.name] = {"kid": credential["kid"], "hmac_key": credential["hmac_key"]}
        runnable = [h for h in wave if h.name in minted]
        result = (
            run_playbook(
                "enroll.yml",
                self.options.inventory,
                limit=[h.name for h in runnable],
                extra_vars={
                    **access.extra_vars(),
                    # the roles skip their apt run on hosts prepare.yml has just installed
                    "acmefleet_packages_installed": all(h.name in self.prepared for h in runnable),
                },
                secret_vars={"acmefleet_preminted_eab": minted},
                progress=progress.event,
            )
            if runnable
            else None
        )
        return runnable, minted, result

    @staticmethod
    def _hand_to_awx(
        settings: AwxSettings, wave: list[FleetHost], progress: Progress
    ) -> PlayResult:
        """The wave as one AWX job; the job mints each host's EAB itself."""
        hosts = [h.name for h in wave]
        try:
            with AwxController(settings) as awx:
                return awx.run_wave(hosts, {}, progress.event)
        except AwxError as exc:
            progress.line(f"AWX: {exc}")
            return PlayResult(failed={h: f"AWX: {exc}" for h in hosts}, rc=2)

    @staticmethod
    def _revoke_unused(api: RemoteBackend, kid: str) -> str:
        try:
            if api.get_eab(kid)["status"] == "unused":
                api.revoke_eab(kid)
                return " (its unused EAB was revoked)"
        except ApiError as exc:
            return f" (revoking its EAB failed: {exc})"
        return ""
