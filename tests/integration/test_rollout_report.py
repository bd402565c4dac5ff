"""The roll-out report page in a real browser: headless Chromium (Playwright) opens the file.

The page is rendered from a realistic roll-out (tests/support/report_samples.py: six hosts,
three waves, one failure that stopped the roll-out) and opened from disk as an operator
would. What a person sees is checked (visible text, the timeline's bars laid out with a
size), that the page asks the network for nothing and needs no script, and that hostile
host data stays text. The screenshot lands in ``artifacts/screenshots/rollout-report.png``
(git-ignored); the README shows a copy of it (docs/images/rollout-report.png).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page

from acmefleet.fleet.report_html import render
from acmefleet.fleet.state import HostOutcome
from tests.support.browser import SCREENSHOTS, local_chromium
from tests.support.report_samples import HMAC_KEY, NOW, SAMPLE_BARS, sample_run, span

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with local_chromium() as launched:
        yield launched


@dataclass
class Opened:
    page: Page
    requested: list[str] = field(default_factory=list)  # every URL the page asked for
    dialogs: list[str] = field(default_factory=list)  # alert() and the like: none expected


@contextmanager
def open_page(browser: Browser, path: Path, *, scripts: bool) -> Iterator[Opened]:
    context = browser.new_context(
        viewport={"width": 1100, "height": 800}, java_script_enabled=scripts
    )
    context.set_default_timeout(10_000)
    try:
        opened = Opened(context.new_page())
        opened.page.on("request", lambda request: opened.requested.append(request.url))

        def on_dialog(dialog: Dialog) -> None:
            opened.dialogs.append(dialog.message)
            dialog.dismiss()

        opened.page.on("dialog", on_dialog)
        opened.page.goto(path.as_uri())
        yield opened
    finally:
        context.close()


def test_the_report_shows_the_run_to_a_person(browser: Browser, tmp_path: Path) -> None:
    outcomes, facts = sample_run()
    path = tmp_path / "report.html"
    path.write_text(render(outcomes, facts, NOW))
    # No script on the page: it must read the same with JavaScript off.
    with open_page(browser, path, scripts=False) as opened:
        page = opened.page
        assert opened.requested == [path.as_uri()]  # self-contained: nothing else fetched

        def tile(status: str) -> str:
            return page.locator(f'.tile[data-status="{status}"] .tile-value').inner_text()

        assert tile("total") == "6"
        assert (tile("enrolled"), tile("skipped"), tile("failed"), tile("not-attempted")) == (
            "3",
            "1",
            "1",
            "1",
        )
        assert page.locator(".stopped").is_visible()
        assert "wave 2: 1 failure(s) > budget 0" in page.locator(".stopped").inner_text()
        assert "2 min 42 s" in page.locator("#summary dl").inner_text()

        failure = page.locator('#failures tr[data-host="web4"]')
        assert failure.is_visible()
        assert "issuance" in failure.inner_text()
        assert "names are not allowed for this account's organisation" in failure.inner_text()

        days = page.locator('#certificates tr[data-host="web1"] td.days')
        assert days.inner_text() == "89" and days.is_visible()
        assert page.locator('#certificates tr[data-host="web0"] td.days').inner_text() == "61"

        bars = page.locator("svg.gantt rect.bar")
        assert bars.count() == SAMPLE_BARS
        for index in range(bars.count()):
            box = bars.nth(index).bounding_box()
            assert box is not None and box["width"] >= 1 and box["height"] >= 1
        failed = page.locator("svg.gantt rect.bar.failed")
        assert failed.count() == 1 and failed.get_attribute("data-phase") == "enrol"
        # the chart's rows line up with the hosts, top to bottom in wave order
        tops = [
            box["y"]
            for host in ("web0", "web1", "web2", "web5")
            if (box := page.locator(f'g.row[data-host="{host}"] text.host').bounding_box())
        ]
        assert tops == sorted(tops) and len(tops) == 4

        text = page.locator("body").inner_text()
        assert HMAC_KEY not in text and HMAC_KEY not in page.content()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "rollout-report.png"), full_page=True)


def test_hostile_host_data_stays_text_with_scripts_on(browser: Browser, tmp_path: Path) -> None:
    """With JavaScript enabled (a browser's default), a host name or an Ansible error that
    holds markup runs nothing: it is shown as the text it is."""
    host = '<img src=x onerror="alert(1)">'
    error = '</pre><script>alert("error")</script>\nsecond line'
    hostile = HostOutcome(
        host,
        "lego_nginx",
        "failed",
        ['"><svg onload=alert(2)>'],
        error=error,
        phases={"enrol": span(0, 4)},
        failed_phase="enrol",
    )
    outcomes, facts = sample_run()
    path = tmp_path / "hostile.html"
    path.write_text(render([*outcomes, hostile], facts, NOW))
    with open_page(browser, path, scripts=True) as opened:
        page = opened.page
        assert opened.dialogs == []
        assert opened.requested == [path.as_uri()]  # no img src=x, no script fetched
        assert page.locator("img, script").count() == 0
        row = page.locator("#failures tbody tr").filter(has_text="second line")
        assert row.locator("td.host").inner_text() == host
        assert row.locator("pre").inner_text() == error
        assert page.locator("svg.gantt text.host").filter(has_text="<img").count() == 1
