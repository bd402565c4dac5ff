"""The roll-out report as one self-contained HTML page: data in, a string out.

``render`` takes the outcomes (with the phase timestamps the state records), what the run was
given (:class:`RunFacts`) and the time to count days left from; it reads no file and no clock.
The page needs nothing else: inline CSS, the timeline as inline SVG, no script (its
Content-Security-Policy forbids any), no external URL, so it can be mailed or attached to a
ticket as it is.

Every string that comes from the fleet (host names, names, issuers, Ansible's error messages)
is HTML-escaped; error texts are cut to a readable length and long base64url runs in them (the
shape of an EAB HMAC key or a console token) are masked: an Ansible message that echoed a
secret must not carry it into a file people pass around.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from acmefleet.fleet import core
from acmefleet.fleet.state import PHASES, HostOutcome, HostStatus, Phase
from acmefleet.fleet.waves import BudgetSpecError, parse_budget

STATUS_ORDER: tuple[HostStatus, ...] = (
    "enrolled",
    "skipped",
    "would-enrol",
    "failed",
    "not-attempted",
)
PHASE_LABELS: dict[Phase, str] = {
    "tls": "TLS check",
    "preflight": "preflight",
    "packages": "packages",
    "eab": "EAB",
    "enrol": "issuance",
    "verify": "verification",
}
PHASE_COLOURS: dict[Phase, str] = {
    "tls": "#94a3b8",
    "preflight": "#6c8ebf",
    "packages": "#9673a6",
    "eab": "#d6a33b",
    "enrol": "#5b9e4d",
    "verify": "#2f8f83",
}
DASH = "\N{EN DASH}"  # an empty cell, a range
MAX_ERROR_CHARS = 1200
MAX_ERROR_LINES = 20
# 32 random bytes in unpadded base64url are 43 characters: EAB HMAC keys and console
# token secrets are at least that long; names, paths and serials are broken by . / : or short.
_SECRET_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43,}={0,2}(?![A-Za-z0-9_=-])")

# The timeline's geometry (SVG user units = CSS pixels at 100 %).
LABEL_WIDTH = 190
CHART_WIDTH = 740
ROW_HEIGHT = 24
BAR_HEIGHT = 14
AXIS_HEIGHT = 26
MIN_BAR = 2.0  # a phase of a few milliseconds is still visible


@dataclass(frozen=True)
class RunFacts:
    """What the run was given and when it ran (epoch seconds); the state's plan."""

    inventory: str
    started: float | None = None
    ended: float | None = None
    plan: tuple[tuple[str, ...], ...] = ()  # host names per wave, as planned
    waves: str | None = None
    max_fail: str | None = None
    check: bool = False
    min_days: int = 30
    aborted: str | None = None  # why the run ended early (the server failed), if it did


# -- text helpers


def mask_secrets(text: str) -> str:
    return _SECRET_SHAPE.sub("[redacted]", text)


def cut(text: str, limit: int = MAX_ERROR_CHARS, max_lines: int = MAX_ERROR_LINES) -> str:
    """At most ``limit`` characters and ``max_lines`` lines, cut at a line or word end if one
    is near, with a note of how much was left out (Ansible tracebacks run to pages)."""
    lines = text.splitlines()
    shown = "\n".join(lines[:max_lines]) if len(lines) > max_lines else text
    if len(shown) > limit:
        head = shown[:limit]
        for separator in ("\n", " "):
            at = head.rfind(separator)
            if at >= limit * 3 // 4:
                head = head[:at]
                break
        shown = head
    left = len(text) - len(shown)
    return shown.rstrip() + (f"\n… ({left} more characters cut)" if left > 0 else "")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_time(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def tick_step(span: float, wanted: int = 8) -> float:
    """A round step (1, 2 or 5 times a power of ten seconds) giving about ``wanted`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / wanted
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


# -- the parts of the page


def _timings(outcome: HostOutcome) -> list[tuple[Phase, float, float]]:
    """The host's phases in order, skipping malformed records (a hand-edited state)."""
    found: list[tuple[Phase, float, float]] = []
    for phase in PHASES:
        span = outcome.phases.get(phase)
        if (
            isinstance(span, list | tuple)
            and len(span) == 2
            and all(isinstance(v, int | float) and math.isfinite(v) for v in span)
            and span[1] >= span[0]
        ):
            found.append((phase, float(span[0]), float(span[1])))
    return found


def failed_phase(outcome: HostOutcome) -> Phase | None:
    """Where a failed host failed: as recorded, else (an older state) its last timed phase."""
    if outcome.status != "failed":
        return None
    if outcome.failed_phase in PHASES:  # a hand-edited state may name anything
        return outcome.failed_phase
    timed = _timings(outcome)
    return timed[-1][0] if timed else None


def _window(outcomes: Sequence[HostOutcome], run: RunFacts) -> tuple[float, float] | None:
    """The timeline's origin and end: the run's, else the span of the phases recorded."""
    spans = [(s, e) for o in outcomes for _, s, e in _timings(o)]
    if run.started is not None:
        origin = run.started
    elif spans:
        origin = min(s for s, _ in spans)
    else:
        return None
    end = run.ended if run.ended is not None else max((e for _, e in spans), default=origin)
    return origin, max(end, origin)


def _row_order(outcomes: Sequence[HostOutcome]) -> list[HostOutcome]:
    return sorted(outcomes, key=lambda o: (o.wave if o.wave is not None else 0, o.host))


def _short(name: str, limit: int = 26) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def timeline_svg(outcomes: Sequence[HostOutcome], run: RunFacts) -> str:
    """The Gantt chart: a row per host, a bar per phase, seconds from the run's start.

    A host the run did not handle (kept from an earlier run with --resume) has its phases
    before the origin: its row says so instead of drawing bars far off the left edge.
    """
    window = _window(outcomes, run)
    rows = _row_order(outcomes)
    if not rows:
        return '<p class="empty">No hosts in this run.</p>'
    if window is None:
        return '<p class="empty">No phase timings were recorded.</p>'
    origin, end = window
    span = max(end - origin, 0.001)
    step = tick_step(span)
    width = LABEL_WIDTH + CHART_WIDTH + 20
    height = AXIS_HEIGHT + ROW_HEIGHT * len(rows) + 6

    def x(t: float) -> float:
        return LABEL_WIDTH + (min(max(t, origin), end) - origin) / span * CHART_WIDTH

    parts = [
        # inline SVG in HTML needs no xmlns: the page names no URL at all
        f'<svg class="gantt" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="Phases per host, in seconds from the start of the run">',
        "<defs>"
        '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#e05a4f"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#8e1b12" stroke-width="3"/>'
        "</pattern></defs>",
    ]
    ticks = int(span // step) + 1
    for index in range(ticks):
        seconds = index * step
        tx = LABEL_WIDTH + seconds / span * CHART_WIDTH
        label = f"{seconds:g} s"
        parts.append(
            f'<line class="grid" x1="{tx:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{tx:.1f}" '
            f'y2="{height - 4}"/>'
            f'<text class="tick" x="{tx:.1f}" y="{AXIS_HEIGHT - 10}">{_e(label)}</text>'
        )
    for number, outcome in enumerate(rows):
        top = AXIS_HEIGHT + number * ROW_HEIGHT
        mid = top + ROW_HEIGHT / 2
        failed = failed_phase(outcome)
        label_class = "host failed" if outcome.status == "failed" else "host"
        parts.append(
            f'<g class="row" data-host="{_e(outcome.host)}">'
            f'<text class="{label_class}" x="{LABEL_WIDTH - 8}" y="{mid + 4:.1f}">'
            f"<title>{_e(outcome.host)} ({_e(outcome.status)})</title>"
            f"{_e(_short(outcome.host))}</text>"
        )
        timed = _timings(outcome)
        if not timed:
            parts.append(
                f'<text class="note" x="{LABEL_WIDTH + 6}" y="{mid + 4:.1f}">'
                "no timings recorded</text>"
            )
        elif max(e for _, _, e in timed) < origin:
            parts.append(
                f'<text class="note" x="{LABEL_WIDTH + 6}" y="{mid + 4:.1f}">'
                "from an earlier run (not redone)</text>"
            )
        else:
            shown = [(p, a, b) for p, a, b in timed if b >= origin]
            # A phase that ran inside another (packages installed by the enrolment playbook,
            # within issuance) is drawn after it and thinner, so both stay visible.
            inner = {
                phase
                for phase, start, stop in shown
                if any(
                    other != phase and a <= start and stop <= b and b - a > stop - start
                    for other, a, b in shown
                )
            }
            for phase, start, stop in sorted(shown, key=lambda bar: bar[0] in inner):
                left, right = x(start), x(stop)
                bar_width = max(right - left, MIN_BAR)
                is_failed = phase == failed
                fill = "url(#hatch)" if is_failed else PHASE_COLOURS[phase]
                height = BAR_HEIGHT - 6 if phase in inner else BAR_HEIGHT
                title = (
                    f"{outcome.host}: {PHASE_LABELS[phase]} "
                    f"{start - origin:.1f}{DASH}{stop - origin:.1f} s ({stop - start:.1f} s)"
                    + (" — failed here" if is_failed else "")
                )
                parts.append(
                    f'<rect class="bar phase-{phase}{" failed" if is_failed else ""}'
                    f'{" inner" if phase in inner else ""}" '
                    f'data-phase="{phase}" x="{left:.1f}" y="{mid - height / 2:.1f}" '
                    f'width="{bar_width:.1f}" height="{height}" rx="2" fill="{fill}">'
                    f"<title>{_e(title)}</title></rect>"
                )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{PHASE_COLOURS[p]}"></span>'
        f"{_e(PHASE_LABELS[p])}</li>"
        for p in PHASES
    )
    return (
        f'<ul class="legend">{items}<li><span class="swatch failed"></span>failed phase</li></ul>'
    )


def _wave_rows(outcomes: Sequence[HostOutcome], run: RunFacts) -> tuple[str, str | None]:
    """The wave table's rows and, if a wave went over its budget, the stop's reason."""
    try:
        budget = parse_budget(run.max_fail)
        budget_text = str(budget)
    except BudgetSpecError:  # a hand-edited state: show what it says
        budget, budget_text = None, str(run.max_fail)
    failures = Counter(o.wave for o in outcomes if o.status == "failed" and o.wave is not None)
    rows, stop = [], None
    ran = {o.wave for o in outcomes if o.wave is not None and o.status != "not-attempted"}
    for number, hosts in enumerate(run.plan, start=1):
        allowed = budget.allowed(len(hosts)) if budget is not None else None
        spent = failures.get(number, 0)
        over = budget is not None and core.over_budget(spent, budget, len(hosts))
        if stop is not None:
            verdict = "not attempted"
        elif over:
            verdict = "over budget: stopped"
            stop = f"wave {number}: {spent} failure(s) > budget {allowed}; the roll-out stopped"
        elif number not in ran:
            verdict = "not run"  # the run ended before it (the server failed)
        else:
            verdict = "within budget"
        rows.append(
            f'<tr class="{"over" if over else ""}"><td>{number}</td><td>{len(hosts)}</td>'
            f"<td>{spent}</td><td>{allowed if allowed is not None else _e(budget_text)}</td>"
            f"<td>{verdict}</td></tr>"
        )
    return "".join(rows), stop


def summary_html(outcomes: Sequence[HostOutcome], run: RunFacts) -> str:
    counts: Counter[str] = Counter(o.status for o in outcomes)
    tiles = [
        f'<div class="tile" data-status="total"><span class="tile-value">{len(outcomes)}</span>'
        '<span class="tile-label">hosts</span></div>'
    ]
    for status in STATUS_ORDER:
        # "failed" is always shown: a zero there is the news people look for
        if counts.get(status) or status == "failed":
            tiles.append(
                f'<div class="tile status-{status}" data-status="{status}">'
                f'<span class="tile-value">{counts.get(status, 0)}</span>'
                f'<span class="tile-label">{status}</span></div>'
            )
    window = _window(outcomes, run)
    started = run.started if run.started is not None else (window[0] if window else None)
    ended = run.ended if run.ended is not None else (window[1] if window else None)
    duration = (
        format_duration(ended - started) if started is not None and ended is not None else "unknown"
    )
    wave_rows, stop = _wave_rows(outcomes, run)
    facts = [
        ("started", format_time(started)),
        ("ended", format_time(ended)),
        ("duration", duration),
        ("waves", run.waves or "none planned"),
        ("failure budget (--max-fail)", f"{run.max_fail or '0'} per wave"),
    ]
    listing = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    waves = (
        '<table class="waves"><thead><tr><th>wave</th><th>hosts</th><th>failures</th>'
        f"<th>budget</th><th></th></tr></thead><tbody>{wave_rows}</tbody></table>"
        if wave_rows
        else '<p class="empty">No wave was planned (no host needed enrolling).</p>'
    )
    stopped = f'<p class="stopped">{_e(stop)}</p>' if stop else ""
    if run.aborted is not None:
        reason = cut(mask_secrets(run.aborted), max_lines=8)
        stopped += f'<p class="stopped aborted">The run stopped: {_e(reason)}</p>'
    return (
        f'<section id="summary"><h2>Summary</h2><div class="tiles">{"".join(tiles)}</div>'
        f'{stopped}<dl class="facts">{listing}</dl>{waves}</section>'
    )


def failures_html(outcomes: Sequence[HostOutcome]) -> str:
    failed = [o for o in sorted(outcomes, key=lambda o: o.host) if o.status == "failed"]
    if not failed:
        return '<section id="failures"><h2>Failures (0)</h2><p class="empty">None.</p></section>'
    rows = []
    for o in failed:
        phase = failed_phase(o)
        error = cut(mask_secrets(o.error or "no error recorded"))
        rows.append(
            f'<tr data-host="{_e(o.host)}"><td class="host">{_e(o.host)}</td>'
            f"<td>{o.wave if o.wave is not None else DASH}</td>"
            f"<td>{_e(PHASE_LABELS[phase]) if phase else 'unknown'}</td>"
            f'<td><pre class="error">{_e(error)}</pre></td></tr>'
        )
    return (
        f'<section id="failures"><h2>Failures ({len(failed)})</h2><table>'
        "<thead><tr><th>host</th><th>wave</th><th>phase</th><th>error</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def days_left(outcome: HostOutcome, now: datetime) -> int | None:
    not_after = core.parse_time(outcome.not_after)
    return None if not_after is None else (not_after - now).days


def certificates_html(outcomes: Sequence[HostOutcome], run: RunFacts, now: datetime) -> str:
    rows = []
    for o in sorted(outcomes, key=lambda o: o.host):
        days = days_left(o, now)
        if days is None:
            days_cell, days_class = DASH, ""
        elif days < 0:
            days_cell, days_class = f"expired {-days} d ago", "expired"
        else:
            days_cell, days_class = str(days), "low" if days < run.min_days else "ok"
        rows.append(
            f'<tr data-host="{_e(o.host)}"><td class="host">{_e(o.host)}</td>'
            f"<td>{_e(', '.join(o.names))}</td><td>{_e(o.issuer or DASH)}</td>"
            f'<td class="serial">{_e((o.serial or DASH)[:24])}</td>'
            f"<td>{_e(o.not_after or DASH)}</td>"
            f'<td class="days {days_class}">{_e(days_cell)}</td></tr>'
        )
    body = (
        "<table><thead><tr><th>host</th><th>names</th><th>issuer</th><th>serial</th>"
        f"<th>not after</th><th>days left</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="empty">No hosts.</p>'
    )
    return (
        '<section id="certificates"><h2>Certificates</h2>'
        f'<p class="hint">As verified over TLS by this run (or recorded by an earlier one); '
        f"days left counted at {_e(now.strftime('%Y-%m-%d %H:%M UTC'))}.</p>{body}</section>"
    )


STYLE = """
:root{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;
background:#f5f7fa}
body{margin:0 auto;max-width:1000px;padding:16px 24px 40px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:26px 0 10px}
.meta{color:#52606d;margin:0;font-size:13px;overflow-wrap:anywhere}
.check{display:inline-block;background:#e0f2fe;color:#075985;border-radius:4px;
padding:2px 8px;font-size:13px;margin-left:8px}
.tiles{display:flex;flex-wrap:wrap;gap:10px}
.tile{background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:10px 16px;min-width:90px}
.tile-value{display:block;font-size:26px;font-weight:600}
.tile-label{color:#52606d;font-size:13px}
.status-enrolled .tile-value,.status-skipped .tile-value{color:#2f7a3b}
.status-failed .tile-value{color:#b42318}.status-not-attempted .tile-value{color:#a15c07}
.status-would-enrol .tile-value{color:#075985}
.stopped{background:#fdecea;border:1px solid #f5c2bd;color:#8e1b12;border-radius:6px;
padding:8px 12px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;font-size:14px}
.facts dt{color:#52606d}.facts dd{margin:0}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;margin-top:8px}
th,td{border-bottom:1px solid #e4e7eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef2f6;font-weight:600}
tr.over td{background:#fdecea}
td.host{font-weight:600;overflow-wrap:anywhere;min-width:6em;max-width:220px}
td.serial{font-family:ui-monospace,monospace;font-size:12px}
pre.error{margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;
font-family:ui-monospace,monospace;max-height:18em;overflow:auto}
td.days.ok{color:#2f7a3b}td.days.low{color:#a15c07;font-weight:600}
td.days.expired{color:#b42318;font-weight:600}
.empty,.hint{color:#52606d;font-size:13px}
.chart{background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:8px;overflow-x:auto}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:14px;padding:0;margin:0 0 8px;
font-size:13px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;
vertical-align:-1px}
.swatch.failed{background:repeating-linear-gradient(45deg,#e05a4f 0 3px,#8e1b12 3px 6px)}
svg.gantt{font-size:12px}
svg .grid{stroke:#e4e7eb;stroke-width:1}
svg .tick{fill:#52606d;text-anchor:middle;font-size:11px}
svg .host{fill:#1f2933;text-anchor:end}svg .host.failed{fill:#b42318;font-weight:600}
svg .note{fill:#7b8794;font-style:italic}
svg rect.bar.failed{stroke:#8e1b12;stroke-width:1}
svg rect.bar.inner{stroke:#fff;stroke-width:1}
"""


def render(outcomes: Sequence[HostOutcome], run: RunFacts, now: datetime) -> str:
    """The whole page."""
    mode = '<span class="check">--check: nothing was changed</span>' if run.check else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        # no script, no fetch, no frame: the page is data, even if opened from a mail
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>acmefleet roll-out report</title><style>{STYLE}</style></head><body>"
        f"<header><h1>acmefleet roll-out{mode}</h1>"
        f'<p class="meta">inventory {_e(run.inventory)} · report written '
        f"{_e(now.strftime('%Y-%m-%d %H:%M:%S UTC'))}</p></header>"
        f"{summary_html(outcomes, run)}"
        '<section id="timeline"><h2>Timeline</h2>'
        '<p class="hint">Seconds from the start of the run; hover a bar for its times.</p>'
        f'{_legend()}<div class="chart">{timeline_svg(outcomes, run)}</div></section>'
        f"{failures_html(outcomes)}"
        f"{certificates_html(outcomes, run, now)}"
        "</body></html>\n"
    )
