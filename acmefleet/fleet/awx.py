"""Hand a wave to AWX / Ansible Automation Platform instead of running Ansible here.

The roll-out keeps what only it can do (TLS verification first, preflight, waves, the
failure budget, ``--resume`` state); for a wave it launches the job template that runs
``playbooks/enroll.yml`` with ``limit`` set to the wave's hosts, follows the job's events
for live progress, and reads each host's result from the job's host summaries. The job
mints each host's EAB itself (``enroll.yml`` with the credential type of docs/awx.md), so
no secret crosses the launch API; the AWX token is read from a file and sent only in the
``Authorization`` header.

Endpoints used (AWX API v2): ``GET job_templates/?name=``, ``GET job_templates/<id>/launch/``,
``POST job_templates/<id>/launch/``, ``GET jobs/<id>/``, ``GET jobs/<id>/job_events/``,
``GET jobs/<id>/job_host_summaries/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from acmefleet.fleet.runner import PlayResult, ProgressFn

FINISHED = ("successful", "failed", "error", "canceled")
PROGRESS_EVENTS = {
    "runner_on_start": "start",
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
}


class AwxError(RuntimeError):
    """AWX refused or failed the hand-off; the message says which step and why."""


@dataclass(frozen=True)
class AwxSettings:
    url: str  # https://awx.example.net
    token_file: Path
    job_template: str  # id or name
    ca_bundle: Path | None = None
    poll_interval: float = 2.0
    timeout: float = 3600.0

    def token(self) -> str:
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise AwxError(f"AWX token file {self.token_file}: {exc.strerror}") from exc
        if not token:
            raise AwxError(f"AWX token file {self.token_file} is empty")
        return token


class AwxController:
    """One AWX instance and the enrolment job template on it."""

    def __init__(
        self,
        settings: AwxSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=settings.url.rstrip("/") + "/api/v2/",
            headers={"Authorization": f"Bearer {settings.token()}"},
            verify=str(settings.ca_bundle) if settings.ca_bundle else True,
            timeout=30.0,
            transport=transport,
        )

    def __enter__(self) -> AwxController:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    # -- HTTP

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AwxError(f"AWX {method} {path}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise AwxError(f"AWX {method} {path}: HTTP {response.status_code}: {_detail(response)}")
        return response.json() if response.content else {}

    def _pages(self, path: str, params: Mapping[str, str | int]) -> Iterator[dict[str, Any]]:
        page: dict[str, Any] = self._request("GET", path, params=dict(params))
        while True:
            yield from page.get("results", [])
            following = page.get("next")
            if not following:
                return
            # ``next`` is a path on the server (/api/v2/...?page=2): strip the API prefix.
            page = self._request("GET", str(following).split("/api/v2/", 1)[-1])

    # -- the hand-off

    def template_id(self) -> int:
        reference = self.settings.job_template
        if reference.isdigit():
            return int(reference)
        found = list(self._pages("job_templates/", {"name": reference}))
        if len(found) != 1:
            raise AwxError(f"AWX has {len(found)} job templates named {reference!r}, not one")
        return int(found[0]["id"])

    def check_template(self, template: int, job_type: str | None = None) -> None:
        """A template that does not prompt for the limit would run on its whole inventory."""
        launch = self._request("GET", f"job_templates/{template}/launch/")
        if job_type is not None and not launch.get("ask_job_type_on_launch"):
            # Without the prompt AWX would ignore job_type and run the real enrolment.
            raise AwxError(
                f"job template {template} does not prompt for the job type on launch; "
                f"a {job_type} run cannot be handed to it (enable 'Prompt on launch' for Job Type)"
            )
        if not launch.get("ask_limit_on_launch"):
            raise AwxError(
                f"job template {template} does not prompt for the limit on launch; "
                "a wave cannot be handed to it (enable 'Prompt on launch' for Limit)"
            )
        if launch.get("passwords_needed_to_start"):
            raise AwxError(
                f"job template {template} needs passwords to start: "
                + ", ".join(launch["passwords_needed_to_start"])
            )

    def launch(
        self,
        template: int,
        hosts: list[str],
        extra_vars: Mapping[str, Any],
        job_type: str | None = None,
    ) -> int:
        body: dict[str, Any] = {"limit": ",".join(hosts)}
        if job_type is not None:
            body["job_type"] = job_type
        if extra_vars:
            body["extra_vars"] = dict(extra_vars)
        started = self._request("POST", f"job_templates/{template}/launch/", json=body)
        ignored = started.get("ignored_fields") or {}
        for key in ("limit", "job_type"):
            if key in ignored:
                raise AwxError(f"AWX ignored the {key} of job {started.get('job')}; cancel it")
        return int(started.get("job") or started["id"])

    def follow(self, job: int, progress: ProgressFn | None) -> str:
        """Wait for the job to finish, passing its host events on; returns its status."""
        deadline = time.monotonic() + self.settings.timeout
        last_event = 0
        while True:
            status = str(self._request("GET", f"jobs/{job}/").get("status", ""))
            for event in self._pages(
                f"jobs/{job}/job_events/",
                {"id__gt": last_event, "order_by": "id", "page_size": 200},
            ):
                last_event = max(last_event, int(event.get("id", 0)))
                kind = PROGRESS_EVENTS.get(str(event.get("event")))
                if progress is not None and kind and event.get("host_name"):
                    progress(str(event["host_name"]), kind, str(event.get("task", "")))
            if status in FINISHED:
                return status
            if time.monotonic() > deadline:
                raise AwxError(f"AWX job {job} still {status} after {self.settings.timeout:.0f} s")
            self._sleep(self.settings.poll_interval)

    def host_results(self, job: int, hosts: list[str], status: str) -> PlayResult:
        result = PlayResult(rc=0 if status == "successful" else 2)
        reasons = self._failure_reasons(job)
        summarised: set[str] = set()
        for summary in self._pages(f"jobs/{job}/job_host_summaries/", {"page_size": 200}):
            host = str(summary.get("host_name", ""))
            summarised.add(host)
            result.changed[host] = int(summary.get("changed", 0))
            if (
                summary.get("failed")
                or int(summary.get("dark", 0))
                or int(summary.get("failures", 0))
            ):
                result.failed[host] = reasons.get(host, f"AWX job {job}: failed")
            else:
                result.ok.add(host)
        for host in hosts:
            if host not in summarised:
                result.failed[host] = f"AWX job {job} ({status}) has no result for this host"
        return result

    def _failure_reasons(self, job: int) -> dict[str, str]:
        reasons: dict[str, str] = {}
        for event in self._pages(
            f"jobs/{job}/job_events/", {"failed": "true", "order_by": "id", "page_size": 200}
        ):
            host = event.get("host_name")
            if not host or event.get("event") not in ("runner_on_failed", "runner_on_unreachable"):
                continue
            data = event.get("event_data") or {}
            if data.get("ignore_errors"):
                continue
            res = data.get("res") or {}
            task = event.get("task", "?")
            if res.get("_ansible_no_log"):
                message = "failed (output hidden by no_log)"
            else:
                message = str(res.get("msg", "failed")).strip()[:400]
            prefix = "unreachable: " if event["event"] == "runner_on_unreachable" else f"{task}: "
            reasons.setdefault(str(host), prefix + message)
        return reasons

    def run_wave(
        self,
        hosts: list[str],
        extra_vars: Mapping[str, Any],
        progress: ProgressFn | None,
        job_type: str | None = None,
    ) -> PlayResult:
        """One job for the wave; ``job_type="check"`` runs it in check mode."""
        template = self.template_id()
        self.check_template(template, job_type)
        job = self.launch(template, hosts, extra_vars, job_type)
        status = self.follow(job, progress)
        return self.host_results(job, hosts, status)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return "; ".join(f"{k}: {v}" for k, v in body.items())[:400]
    return str(body)[:400]
