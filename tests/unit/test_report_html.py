"""The roll-out report page (fleet/report_html.py): a pure renderer, read back with a parser.

The page is parsed with the standard library's HTML parser, the way a browser tokenises it:
what is a tag, what is text and which attributes exist is measured, not searched for with
string matching alone. The browser test (tests/integration/test_rollout_report.py) opens the
same sample in headless Chromium.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from acmefleet.fleet import report_html
from acmefleet.fleet.report_html import (
    CHART_WIDTH,
    LABEL_WIDTH,
    MIN_BAR,
    RunFacts,
    cut,
    format_duration,
    mask_secrets,
    render,
    tick_step,
)
from acmefleet.fleet.runner import package_task_span
from acmefleet.fleet.state import HostOutcome
from tests.support.report_samples import (
    HMAC_KEY,
    NOW,
    SAMPLE_BARS,
    T0,
    sample_run,
    span,
    stamp,
)

# What the page may contain: anything else (a script, an image, a link) is a finding.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "span",
    "section", "div", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th", "td", "pre",
    "ul", "li", "svg", "defs", "pattern", "rect", "line", "text", "g",
}  # fmt: skip


class Page(HTMLParser):
    """The page as a browser's tokeniser sees it: elements with attributes, and text."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.stack: list[str] = []
        self.texts: list[tuple[tuple[str, ...], str]] = []  # (open elements, text)
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag != "meta":  # the page's only void element; SVG ones are written as <x/>
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.texts.append((tuple(self.stack), data))

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [
            attrs
            for name, attrs in self.elements
            if name == tag and (cls is None or cls in attrs.get("class", "").split())
        ]

    def text(self, inside: str | None = None) -> str:
        return "".join(t for stack, t in self.texts if inside is None or inside in stack)


def tiles(page: str) -> dict[str, int]:
    """The summary tiles: data-status -> the number shown."""
    pattern = r'data-status="([^"]+)"><span class="tile-value">(\d+)<'
    return {status: int(value) for status, value in re.findall(pattern, page)}


def outcome(host: str, status: str = "enrolled", **values: object) -> HostOutcome:
    return HostOutcome(host, "lego_nginx", status, [f"{host}.example.net"], **values)  # type: ignore[arg-type]


# -- the sample roll-out


def test_the_sample_page_has_summary_timeline_failures_and_certificates() -> None:
    outcomes, facts = sample_run()
    source = render(outcomes, facts, NOW)
    page = Page(source)
    assert tiles(source) == {
        "total": 6,
        "enrolled": 3,
        "skipped": 1,
        "failed": 1,
        "not-attempted": 1,
    }
    summary = page.text("dl")
    assert "2026-12-06 01:50:00 UTC" in summary  # started: T0
    assert "2 min 42 s" in summary  # 161.5 s
    assert "1,75%,100%" in summary and "0 per wave" in summary
    assert "wave 2: 1 failure(s) > budget 0; the roll-out stopped" in page.text("p")
    waves = [r.get("class", "") for r in page.all("tr") if "over" in r.get("class", "")]
    assert len(waves) == 1
    verdicts = [t for stack, t in page.texts if stack[-2:] == ("tr", "td") and "budget" in t]
    assert verdicts == ["within budget", "over budget: stopped"]
    assert "not attempted" in source.split('class="waves"', 1)[1].split("</table>", 1)[0]
    bars = page.all("rect", "bar")
    assert len(bars) == SAMPLE_BARS
    failed = page.all("rect", "failed")
    assert len(failed) == 1 and failed[0]["data-phase"] == "enrol"
    rows = [a["data-host"] for a in page.all("g", "row")]
    assert rows == ["web0", "web1", "web2", "web3", "web4", "web5"]  # by wave, then name
    failures = page.text("pre")
    assert "names are not allowed for this account's organisation" in failures
    assert "(its unused EAB was revoked)" in failures
    certificates = source.split('id="certificates"', 1)[1]
    assert '<td class="days ok">89</td>' in certificates
    assert '<td class="days ok">61</td>' in certificates
    assert "acmefleet Private Issuing CA" in certificates
    # the key ids are in the JSON report, not on the page (web4's is in its error text)
    assert "kid-web1" not in source and "kid-web2" not in source


def test_no_secret_reaches_the_page() -> None:
    outcomes, facts = sample_run()
    assert any(HMAC_KEY in (o.error or "") for o in outcomes)  # the input carries it
    source = render(outcomes, facts, NOW)
    assert HMAC_KEY not in source
    assert HMAC_KEY[:20] not in source
    assert "--hmac [redacted]" in source
    token = "acmefleet_7f3a_" + "Z" * 43
    leaky = [outcome("web9", "failed", error=f"POST /console/api/eab: Bearer {token}")]
    assert token not in render(leaky, RunFacts("inv"), NOW)


def test_the_page_is_self_contained_and_runs_no_script() -> None:
    outcomes, facts = sample_run()
    source = render(outcomes, facts, NOW)
    page = Page(source)
    assert {tag for tag, _ in page.elements} <= ALLOWED_TAGS
    for tag, attrs in page.elements:
        assert not {"src", "href", "xlink:href", "action"} & attrs.keys(), tag
        assert not [a for a in attrs if a.startswith("on")], tag
    for marker in ("http://", "https://", "//", "@import"):
        assert marker not in source.replace("</", "<")
    assert source.count("url(") == source.count("url(#hatch)")
    csp = page.all("meta")[1]
    assert csp["http-equiv"] == "Content-Security-Policy"
    assert "default-src 'none'" in csp["content"] and "script" not in csp["content"]


def test_bars_stay_inside_the_chart() -> None:
    outcomes, facts = sample_run()
    for bar in Page(render(outcomes, facts, NOW)).all("rect", "bar"):
        left, width = float(bar["x"]), float(bar["width"])
        assert LABEL_WIDTH <= left <= LABEL_WIDTH + CHART_WIDTH
        assert width >= MIN_BAR and left + width <= LABEL_WIDTH + CHART_WIDTH + MIN_BAR
    # the canary's issuance starts at 41.6 s of 161.5 s
    canary = Page(render(outcomes, facts, NOW)).all("rect", "phase-enrol")[0]
    assert float(canary["x"]) == pytest.approx(LABEL_WIDTH + 41.6 / 161.5 * CHART_WIDTH, abs=0.1)


def test_packages_installed_inside_issuance_are_drawn_on_top_and_thinner() -> None:
    outcomes, facts = sample_run()
    row = render(outcomes, facts, NOW).split('data-host="web2"', 1)[1].split("</g>", 1)[0]
    bars = Page(row).all("rect", "bar")
    order = [b["data-phase"] for b in bars]
    assert order.index("packages") > order.index("enrol")  # drawn after: on top
    heights = {b["data-phase"]: float(b["height"]) for b in bars}
    assert heights["packages"] < heights["enrol"]
    assert "inner" in next(b for b in bars if b["data-phase"] == "packages")["class"]
    canary = render(outcomes, facts, NOW).split('data-host="web1"', 1)[1].split("</g>", 1)[0]
    assert " inner" not in canary  # the canary's packages ran before, beside the server


# -- edge cases


def test_an_empty_fleet() -> None:
    source = render([], RunFacts("inventory.yml"), NOW)
    page = Page(source)
    assert tiles(source) == {"total": 0, "failed": 0}
    assert "No hosts in this run." in page.text()
    assert "No wave was planned" in page.text()
    assert page.all("svg") == []
    assert "Failures (0)" in page.text("h2")


def test_all_failed_in_preflight() -> None:
    hosts = [
        outcome(
            f"web{n}",
            "failed",
            error=f"preflight: ssh: connect to host web{n} port 22: Connection refused",
            phases={"tls": span(0, 1), "preflight": span(1, 6)},
            failed_phase="preflight",
        )
        for n in range(3)
    ]
    source = render(hosts, RunFacts("inv", started=T0, ended=T0 + 6), NOW)
    page = Page(source)
    assert tiles(source) == {"total": 3, "failed": 3}
    assert [b["data-phase"] for b in page.all("rect", "failed")] == ["preflight"] * 3
    assert len(page.all("rect", "bar")) == 6
    assert page.text("pre").count("Connection refused") == 3
    assert len(page.all("text", "failed")) == 3  # the host labels are marked too
    assert "No wave was planned" in page.text()  # preflight failures spend no budget


def test_a_host_without_timings_and_a_run_without_start() -> None:
    hosts = [
        outcome("timed", phases={"tls": span(0, 2), "verify": span(2, 4)}),
        outcome("bare"),
    ]
    page = Page(render(hosts, RunFacts("inv"), NOW))  # no start: the phases give the window
    assert "no timings recorded" in page.text("svg")
    assert len(page.all("rect", "bar")) == 2
    assert "4.0 s" in page.text("dl")
    nothing = Page(render([outcome("bare")], RunFacts("inv"), NOW))
    assert "No phase timings were recorded." in nothing.text()
    assert "unknown" in nothing.text("dl")


def test_a_host_kept_from_an_earlier_run_draws_no_bars() -> None:
    old = outcome("old", phases={"tls": span(-9000, -8999)}, not_after=stamp(50))
    new = outcome("new", phases={"tls": span(0, 1)})
    page = Page(render([old, new], RunFacts("inv", started=T0, ended=T0 + 1), NOW))
    assert "from an earlier run (not redone)" in page.text("svg")
    assert len(page.all("rect", "bar")) == 1


def test_malformed_phase_records_are_skipped() -> None:
    odd = outcome(
        "odd",
        phases={
            "tls": [T0 + 5, T0 + 1],
            "preflight": ["x", 1],
            "packages": [T0, float("inf")],  # json.loads reads Infinity and NaN
            "eab": [T0],
            "enrol": [float("nan"), T0],
            "verify": span(1, 2),
        },
    )
    page = Page(render([odd], RunFacts("inv", started=T0, ended=T0 + 2), NOW))
    assert [b["data-phase"] for b in page.all("rect", "bar")] == ["verify"]


def test_hostile_strings_are_text_not_markup() -> None:
    host = '<script>alert("host")</script>'
    error = "bad ' \" & <b>bold</b>\n</pre><script>alert(1)</script>\nline three"
    name = "<img src=x onerror=alert(2)>"
    hostile = outcome(
        host,
        "failed",
        error=error,
        issuer='"><svg onload=alert(3)>',
        not_after=stamp(10),
        phases={"enrol": span(0, 3)},
        failed_phase="enrol",
    )
    hostile.names = [name]
    source = render([hostile], RunFacts("inv <i>", started=T0, ended=T0 + 3), NOW)
    page = Page(source)
    assert {tag for tag, _ in page.elements} <= ALLOWED_TAGS
    assert not [a for _, attrs in page.elements for a in attrs if a.startswith("on")]
    assert page.text("pre") == error  # shown as it was, newlines and all
    assert host in page.text("td") and name in page.text("td")
    assert host in page.text("svg")  # the timeline's label (and its title)
    assert [a["data-host"] for a in page.all("g", "row")] == [host]  # an attribute, quoted
    assert "inv <i>" in page.text("p")
    assert '<td class="days low">10</td>' in source  # fewer than min_days


def test_long_errors_are_cut_with_a_note() -> None:
    words = " ".join(f"word{n}" for n in range(3000))  # about 26 000 characters
    shown = cut(words)
    body, note = shown.rsplit("\n", 1)
    assert len(body) <= report_html.MAX_ERROR_CHARS
    assert body.endswith(body.split()[-1]) and words.startswith(body)  # at a word's end
    assert note == f"… ({len(words) - len(body)} more characters cut)"
    lines = "\n".join(f"Traceback line {n}" for n in range(200))
    kept = cut(lines)
    assert kept.count("\n") == report_html.MAX_ERROR_LINES  # 20 lines and the note
    assert kept.startswith("Traceback line 0\n") and "Traceback line 20\n" not in kept
    assert cut("short") == "short"
    unbroken = "x" * 5000
    assert cut(unbroken).startswith("x" * report_html.MAX_ERROR_CHARS + "\n…")
    page = Page(render([outcome("w", "failed", error=words)], RunFacts("inv"), NOW))
    assert len(page.text("pre")) < report_html.MAX_ERROR_CHARS + 60


def test_secret_shapes_are_masked_and_other_text_is_not() -> None:
    assert mask_secrets(f"--hmac {HMAC_KEY} run") == "--hmac [redacted] run"
    assert mask_secrets(f"key={HMAC_KEY}==,") == "key=[redacted],"
    kept = (
        "serial 5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f on web1.example.net, "
        "/var/lib/acmefleet/.lego/certificates/web1.example.net.crt, kid Tz3xQ9rL2mV8"
    )
    assert mask_secrets(kept) == kept


def test_days_left_and_expired_certificates() -> None:
    hosts = [
        outcome("fresh", not_after=stamp(89), issuer="CA"),
        outcome("expired", "failed", not_after=stamp(-3), issuer="CA", error="verification"),
        outcome("none", "failed", error="no TLS"),
    ]
    source = render(hosts, RunFacts("inv", min_days=30), NOW)
    assert '<td class="days ok">89</td>' in source
    assert '<td class="days expired">expired 3 d ago</td>' in source
    none_row = source.split('data-host="none"><td class="host">none</td>')[-1].split("</tr>")[0]
    assert none_row.count("\N{EN DASH}") >= 3  # issuer, serial, not after, days left


def test_check_mode_is_said_and_would_enrol_counted() -> None:
    hosts = [outcome("a", "would-enrol", phases={"enrol": span(0, 9)}), outcome("b", "skipped")]
    source = render(hosts, RunFacts("inv", started=T0, ended=T0 + 9, check=True), NOW)
    assert "--check: nothing was changed" in Page(source).text("h1")
    assert tiles(source) == {"total": 2, "skipped": 1, "would-enrol": 1, "failed": 0}


def test_an_older_state_without_failed_phase_marks_the_last_timed_phase() -> None:
    old = outcome("old", "failed", error="x", phases={"tls": span(0, 1), "preflight": span(1, 2)})
    odd = outcome("odd", "failed", error="y", phases={"tls": span(0, 1)}, failed_phase="<x>")
    page = Page(render([old, odd], RunFacts("inv", started=T0, ended=T0 + 2), NOW))
    assert [b["data-phase"] for b in page.all("rect", "failed")] == ["tls", "preflight"]


def test_a_run_that_stopped_early_says_why() -> None:
    outcomes, facts = sample_run()
    reason = f"ACME server: 500 <b>boom</b> Bearer acmefleet_ab12_{HMAC_KEY}"
    source = render(outcomes, replace(facts, aborted=reason), NOW)
    stopped = [t for stack, t in Page(source).texts if "p" in stack and "stopped:" in t]
    assert stopped == ["The run stopped: ACME server: 500 <b>boom</b> Bearer [redacted]"]
    # a run the server stopped after the canary: waves 2 and 3 were not run
    early = [o for o in outcomes if o.wave in (None, 1)]
    table = render(early, replace(facts, aborted=reason), NOW).split('class="waves"', 1)[1]
    assert table.split("</table>", 1)[0].count("<td>not run</td>") == 2
    assert HMAC_KEY not in source and "stopped aborted" not in render(outcomes, facts, NOW)


def test_a_hand_edited_budget_is_shown_as_written() -> None:
    outcomes, facts = sample_run()
    page = Page(render(outcomes, replace(facts, max_fail="lots"), NOW))
    assert "lots" in page.text("table")


@pytest.mark.parametrize(
    ("span_seconds", "step"),
    [(0.004, 0.0005), (1.0, 0.2), (8.0, 1.0), (161.5, 50.0), (600.0, 100.0), (3600, 500.0)],
)
def test_tick_steps_are_round(span_seconds: float, step: float) -> None:
    assert tick_step(span_seconds) == pytest.approx(step)
    assert span_seconds / tick_step(span_seconds) <= 8


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "0.2 s"), (59.94, "59.9 s"), (161.5, "2 min 42 s"), (3725, "1 h 02 min")],
)
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_package_task_spans_from_runner_event_data() -> None:
    """The shape is the events callback's (tests/integration/test_runner_events.py runs it)."""
    data = {
        "task_path": "/c/roles/lego_nginx/tasks/packages.yml:3",
        "start": "2026-12-06T01:50:00.250000+00:00",
        "end": "2026-12-06T01:50:30.500000+00:00",
    }
    assert package_task_span(data) == (T0 + 0.25, T0 + 30.5)
    assert package_task_span({**data, "task_path": "/c/roles/x/tasks/install.yml:3"}) is None
    assert package_task_span({**data, "start": None}) is None
    assert package_task_span({**data, "end": "2026-12-06T01:49:00+00:00"}) is None
    assert package_task_span({"task_path": data["task_path"]}) is None


def test_the_renderer_is_pure() -> None:
    outcomes, facts = sample_run()
    assert render(outcomes, facts, NOW) == render(outcomes, facts, NOW)
    later = render(outcomes, facts, NOW + timedelta(days=1))
    assert '<td class="days ok">88</td>' in later
