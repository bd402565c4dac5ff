"""Handing a wave to AWX, checked against AWX API v2 as its documentation describes it.

No AWX can run on this machine, so these tests put the client in front of an in-process
model of the API v2 resources it uses (job templates and their launch endpoint, jobs, job
events, job host summaries, page links) and check what it sends and how it reads the
answers: the wave's hosts as ``limit``, the token only in the header, no secret in the
launch body, a template that does not prompt for the limit refused before any launch,
per-host errors from failed and unreachable events (no_log respected), paging followed.
Running it against a real AWX is on paper only (docs/awx.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from acmefleet.fleet.awx import AwxController, AwxError, AwxSettings

TOKEN = "awx-token-0123456789abcdef"


class AwxApi:
    """The part of AWX API v2 a hand-off uses, with one job template named ``enroll``."""

    def __init__(
        self, *, ask_limit: bool = True, ask_job_type: bool = False, page_size: int = 2
    ) -> None:
        self.ask_limit = ask_limit
        self.ask_job_type = ask_job_type
        self.page_size = page_size
        self.requests: list[httpx.Request] = []
        self.launches: list[dict[str, Any]] = []
        self.polls_until_done = 2
        self.outcome: dict[str, str] = {}  # host -> ok | failed | unreachable | secret

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return httpx.Response(
                401, json={"detail": "Authentication credentials were not provided."}
            )
        path = request.url.path.removeprefix("/api/v2/")
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        if path == "job_templates/" and request.method == "GET":
            found = [{"id": 7, "name": "enroll"}] if query.get("name") == "enroll" else []
            return self._page(found, query, path)
        if path == "job_templates/7/launch/" and request.method == "GET":
            return httpx.Response(
                200,
                json={
                    "ask_limit_on_launch": self.ask_limit,
                    "ask_job_type_on_launch": self.ask_job_type,
                    "passwords_needed_to_start": [],
                },
            )
        if path == "job_templates/7/launch/" and request.method == "POST":
            body = json.loads(request.content)
            self.launches.append(body)
            # AWX drops a prompt the template does not ask for, and says so
            ignored = {} if self.ask_job_type or "job_type" not in body else {"job_type": "check"}
            return httpx.Response(201, json={"job": 41, "id": 41, "ignored_fields": ignored})
        if path == "jobs/41/":
            self.polls_until_done -= 1
            status = "running" if self.polls_until_done > 0 else self._final_status()
            return httpx.Response(200, json={"id": 41, "status": status})
        if path == "jobs/41/job_events/":
            events = [e for e in self._events() if e["id"] > int(query.get("id__gt", 0))]
            if query.get("failed") == "true":
                events = [e for e in events if e["failed"]]
            return self._page(events, query, path)
        if path == "jobs/41/job_host_summaries/":
            summaries = [
                {
                    "host_name": host,
                    "changed": 3 if outcome == "ok" else 0,
                    "failed": outcome in ("failed", "secret"),
                    "failures": 1 if outcome in ("failed", "secret") else 0,
                    "dark": 1 if outcome == "unreachable" else 0,
                }
                for host, outcome in self.launched_hosts_outcomes()
            ]
            return self._page(summaries, query, path)
        return httpx.Response(404, json={"detail": "Not found."})

    def launched_hosts_outcomes(self) -> list[tuple[str, str]]:
        hosts = self.launches[-1]["limit"].split(",")
        return [(h, self.outcome.get(h, "ok")) for h in hosts]

    def _final_status(self) -> str:
        failed = any(o != "ok" for _, o in self.launched_hosts_outcomes())
        return "failed" if failed else "successful"

    def _events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for host, outcome in self.launched_hosts_outcomes():
            events.append(
                {"event": "runner_on_start", "host_name": host, "task": "Enrol", "failed": False}
            )
            if outcome == "ok":
                events.append(
                    {"event": "runner_on_ok", "host_name": host, "task": "Enrol", "failed": False}
                )
            elif outcome == "unreachable":
                events.append(
                    {
                        "event": "runner_on_unreachable",
                        "host_name": host,
                        "task": "Enrol",
                        "failed": True,
                        "event_data": {"res": {"msg": "Failed to connect to the host via ssh"}},
                    }
                )
            else:
                res = (
                    {"_ansible_no_log": True, "msg": "hmac=SECRET"}
                    if outcome == "secret"
                    else {"msg": "nginx -t failed"}
                )
                events.append(
                    {
                        "event": "runner_on_failed",
                        "host_name": host,
                        "task": "Reload nginx",
                        "failed": True,
                        "event_data": {"res": res},
                    }
                )
        for number, event in enumerate(events, start=1):
            event["id"] = number
        return events

    def _page(
        self, items: list[dict[str, Any]], query: dict[str, str], path: str
    ) -> httpx.Response:
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * self.page_size : page * self.page_size]
        following = None
        if page * self.page_size < len(items):
            rest = {k: v for k, v in query.items() if k != "page"}
            args = "&".join(f"{k}={v}" for k, v in {**rest, "page": page + 1}.items())
            following = f"/api/v2/{path}?{args}"
        return httpx.Response(200, json={"count": len(items), "next": following, "results": chunk})


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "awx-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def controller(api: AwxApi, token_file: Path, template: str = "enroll") -> AwxController:
    settings = AwxSettings("https://awx.example.net", token_file, template, poll_interval=0)
    return AwxController(settings, transport=httpx.MockTransport(api), sleep=lambda _: None)


def test_a_wave_becomes_one_job_limited_to_its_hosts(token_file: Path) -> None:
    api = AwxApi()
    seen: list[tuple[str, str]] = []
    with controller(api, token_file) as awx:
        result = awx.run_wave(["web1", "web2", "web3"], {}, lambda h, k, t: seen.append((h, k)))
    assert api.launches == [{"limit": "web1,web2,web3"}]
    assert result.ok == {"web1", "web2", "web3"} and not result.failed and result.rc == 0
    assert result.changed == {"web1": 3, "web2": 3, "web3": 3}
    assert ("web3", "ok") in seen and ("web1", "start") in seen
    # the token only ever travels in the Authorization header
    for request in api.requests:
        assert TOKEN not in str(request.url) and TOKEN.encode() not in request.content


def test_per_host_errors_respect_no_log(token_file: Path) -> None:
    api = AwxApi()
    api.outcome = {"web2": "failed", "web3": "unreachable", "web4": "secret"}
    with controller(api, token_file) as awx:
        result = awx.run_wave(["web1", "web2", "web3", "web4"], {}, None)
    assert result.ok == {"web1"}
    assert result.failed["web2"] == "Reload nginx: nginx -t failed"
    assert result.failed["web3"] == "unreachable: Failed to connect to the host via ssh"
    assert result.failed["web4"] == "Reload nginx: failed (output hidden by no_log)"
    assert "SECRET" not in json.dumps(result.failed)
    assert result.rc != 0


def test_a_template_without_a_limit_prompt_is_never_launched(token_file: Path) -> None:
    api = AwxApi(ask_limit=False)
    with controller(api, token_file) as awx, pytest.raises(AwxError, match="Prompt on launch"):
        awx.run_wave(["web1"], {}, None)
    assert api.launches == []
    assert all(r.method == "GET" for r in api.requests)


def test_template_by_id_and_unknown_name(token_file: Path) -> None:
    api = AwxApi()
    with controller(api, token_file, template="7") as awx:
        assert awx.template_id() == 7
    with (
        controller(api, token_file, template="nope") as awx,
        pytest.raises(AwxError, match="0 job templates named 'nope'"),
    ):
        awx.template_id()


def test_refusals_are_reported_with_awx_detail(token_file: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    with (
        controller(AwxApi(), wrong) as awx,
        pytest.raises(AwxError, match="HTTP 401: detail: Authentication credentials"),
    ):
        awx.run_wave(["web1"], {}, None)
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    with pytest.raises(AwxError, match="is empty"):
        controller(AwxApi(), empty)


def test_a_host_missing_from_the_summaries_is_a_failure(token_file: Path) -> None:
    api = AwxApi()
    with controller(api, token_file) as awx:
        template = awx.template_id()
        job = awx.launch(template, ["web1"], {})
        status = awx.follow(job, None)
        result = awx.host_results(job, ["web1", "ghost"], status)
    assert result.ok == {"web1"}
    assert "no result for this host" in result.failed["ghost"]


def test_rollout_refuses_incomplete_awx_options(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from acmefleet.fleet.cli import rollout

    inventory = tmp_path / "fleet.yml"
    partial = CliRunner().invoke(
        rollout, ["-i", str(inventory), "--awx-url", "https://awx.example.net"]
    )
    assert partial.exit_code == 2 and "go together" in partial.output
    empty = tmp_path / "empty"
    empty.write_text("")
    no_token = CliRunner().invoke(
        rollout,
        [
            "-i",
            str(inventory),
            "--awx-url",
            "https://awx.example.net",
            "--awx-job-template",
            "enroll",
            "--awx-token-file",
            str(empty),
        ],
    )
    assert no_token.exit_code == 2 and "is empty" in no_token.output


def test_a_check_run_is_a_check_job_and_needs_the_job_type_prompt(token_file: Path) -> None:
    api = AwxApi(ask_job_type=True)
    with controller(api, token_file) as awx:
        result = awx.run_wave(["web1"], {}, None, job_type="check")
    assert api.launches == [{"limit": "web1", "job_type": "check"}]
    assert result.ok == {"web1"}
    refusing = AwxApi(ask_job_type=False)
    with (
        controller(refusing, token_file) as awx,
        pytest.raises(AwxError, match="does not prompt for the job type"),
    ):
        awx.run_wave(["web1"], {}, None, job_type="check")
    assert refusing.launches == []  # a check must never become a real enrolment
