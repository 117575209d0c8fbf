"""`chaos.html`: a campaign on one self-contained page, drawn from `chaos_report.json` alone.

Totals first, then what failed and how to replay it, then one fault timeline per run: the run's
span, each fault's measured strike..clear bar (coloured by the run's classification) over a
dashed outline of what was planned, so a late or missing strike shows at a glance. Inline SVG and
CSS only: no scripts, no external references, so the file opens anywhere, offline.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from evidence.writer import atomic_write_bytes
from gates.chaos.model import CLASSIFICATIONS
from gates.chaos.report import exit_code, failing_runs, summary_line
from gates.chaos.schedule import INSTANT_FAULTS, format_fault_list

PAGE_NAME: Final = "chaos.html"
COLORS: Final = {"clean": "#1a7f37", "failed-closed": "#9a6700", "LOST": "#cf222e", "UNEXPLAINED": "#8250df"}
WIDTH: Final = 900
RIGHT_PAD: Final = 10
LANE_H: Final = 16
SPAN_H: Final = 8

_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#6e7781;font-size:13px}
.badge{display:inline-block;padding:6px 16px;border-radius:6px;color:#fff;font-weight:700;font-size:18px}
.pass{background:#1a7f37} .fail{background:#cf222e}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
th{background:#f6f8fa} td:first-child,th:first-child{text-align:left}
.zero{color:#afb8c1} .bad{color:#cf222e;font-weight:700}
.tables{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
.failure{border-left:4px solid #cf222e;padding:4px 12px;margin:8px 0}
.failure.UNEXPLAINED{border-color:#8250df} code{background:#f6f8fa;padding:2px 4px;font-size:12px}
.run{display:flex;align-items:center;gap:8px;font-size:12px;border-bottom:1px solid #eaeef2}
.run .name{width:300px;flex:none;font-family:ui-monospace,monospace}
.run svg{flex:1;max-width:900px;height:auto}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border-radius:2px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _intervals(outcome: Mapping[str, Any]) -> dict[str, list[tuple[float, float | None]]]:
    """Measured (strike, clear) pairs per kind; clear is None for a fault never cleared."""
    pairs: dict[str, list[tuple[float, float | None]]] = {}
    events = sorted(outcome["events"], key=lambda e: float(e["at_sec"]))
    for i, event in enumerate(events):
        if event["action"] != "strike":
            continue
        clear = next(
            (
                float(e["at_sec"])
                for e in events[i + 1 :]
                if e["kind"] == event["kind"] and e["action"] == "clear"
            ),
            None,
        )
        pairs.setdefault(event["kind"], []).append((float(event["at_sec"]), clear))
    return pairs


def _timeline(outcome: Mapping[str, Any], duration: float, scale_sec: float) -> str:
    """One run's SVG: span, planned outlines, measured bars, labels."""
    color = COLORS.get(outcome["classification"], "#6e7781")
    wall = max(float(outcome["wallclock_sec"]), 0.0)
    px = (WIDTH - RIGHT_PAD) / scale_sec
    faults: Sequence[Mapping[str, Any]] = outcome["faults"]
    measured = _intervals(outcome)
    lane_kinds = [f["kind"] for f in faults] + [k for k in measured if k not in {f["kind"] for f in faults}]
    height = SPAN_H + 6 + LANE_H * max(len(lane_kinds), 1)
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img">',
        f"<title>{_e(outcome['schedule_line'])}: {_e(outcome['classification'])}</title>",
        f'<rect x="0" y="2" width="{wall * px:.1f}" height="{SPAN_H}" fill="#d0d7de" rx="2"/>',
        f'<line x1="{duration * px:.1f}" x2="{duration * px:.1f}" y1="0" y2="{height}" '
        'stroke="#6e7781" stroke-dasharray="2,2"/>',
    ]
    planned = {f["kind"]: f for f in faults}
    for lane, kind in enumerate(lane_kinds):
        parts.append(
            _lane(
                kind, planned.get(kind), measured.get(kind, []), SPAN_H + 6 + lane * LANE_H, wall, px, color
            )
        )
    parts.append("</svg>")
    return "".join(parts)


def _lane(
    kind: str,
    plan: Mapping[str, Any] | None,
    bars: Sequence[tuple[float, float | None]],
    y: int,
    wall: float,
    px: float,
    color: str,
) -> str:
    """One fault's lane: the planned outline, the measured bar(s) (a tick for a signal-like
    fault, a faded bar to the run's end for one never cleared) and its label beside them."""
    parts = []
    right = 0.0
    if plan is not None:
        x0, w = float(plan["at_sec"]) * px, max(float(plan["duration_sec"]) * px, 2.0)
        right = x0 + w
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 1}" width="{w:.1f}" height="{LANE_H - 4}" fill="none" '
            f'stroke="{color}" stroke-dasharray="3,2"/>'
        )
    for strike, clear in bars:
        instant = kind in INSTANT_FAULTS
        stop = strike if instant else (clear if clear is not None else max(wall, strike))
        x0, w = strike * px, max((stop - strike) * px, 3.0)
        right = max(right, x0 + w)
        cleared = "" if instant else (", never cleared" if clear is None else f", cleared {clear:.2f}s")
        faded = ' opacity="0.5"' if clear is None and not instant else ""
        top, height = (y, LANE_H - 2) if instant else (y + 3, LANE_H - 8)
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{w:.1f}" height="{height}" fill="{color}"{faded}>'
            f"<title>{_e(kind)} struck {strike:.2f}s{cleared}</title></rect>"
        )
    label = f"{kind}{'' if bars else ' (not struck)'}"
    starts = [strike * px for strike, _ in bars] + ([float(plan["at_sec"]) * px] if plan is not None else [])
    left = min(starts)
    if right + 6 + 6 * len(label) <= WIDTH:
        x, anchor = right + 4, "start"
    else:
        x, anchor = left - 4, "end"
    parts.append(
        f'<text x="{x:.1f}" y="{y + LANE_H - 5}" font-size="10" fill="#1f2328" '
        f'text-anchor="{anchor}">{_e(label)}</text>'
    )
    return "".join(parts)


def _axis(scale_sec: float) -> str:
    px = (WIDTH - RIGHT_PAD) / scale_sec
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800) if scale_sec / s <= 12)
    ticks = []
    for i in range(int(scale_sec // step) + 1):
        x = i * step * px
        ticks.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="14" y2="20" stroke="#6e7781"/>'
            f'<text x="{x + 2:.1f}" y="11" font-size="10" fill="#6e7781">{i * step}s</text>'
        )
    return f'<svg class="axis" viewBox="0 0 {WIDTH} 20" width="{WIDTH}" height="20">{"".join(ticks)}</svg>'


def _count(value: int, bad: bool = False) -> str:
    cls = "zero" if value == 0 else ("bad" if bad else "")
    return f'<td class="{cls}">{value}</td>'


def _totals_tables(report: Mapping[str, Any]) -> str:
    t = report["totals"]
    rows = "".join(
        f"<tr><td>{_e(c)}</td>{_count(t['by_classification'][c], c in ('LOST', 'UNEXPLAINED'))}</tr>"
        for c in CLASSIFICATIONS
    )
    figures = [
        ("runs", t["runs"]),
        ("faults struck", t["faults_struck"]),
        ("runs per hour", report["runs_per_hour"]),
        ("checker overhead", f"{t['checker_overhead_pct']}% (max {t['checker_overhead_max_pct']}%)"),
        ("campaign wallclock", f"{report['campaign_wallclock_sec']:.0f}s"),
    ]
    fig_rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in figures)
    head = "".join(f"<th>{_e(c)}</th>" for c in ("kind", "planned", "struck", *CLASSIFICATIONS))
    kind_rows = "".join(
        f"<tr><td>{_e(kind)}</td>{_count(row['planned'])}{_count(row['struck'])}"
        + "".join(_count(row[c], c in ("LOST", "UNEXPLAINED")) for c in CLASSIFICATIONS)
        + "</tr>"
        for kind, row in t["by_fault_kind"].items()
    )
    return (
        '<div class="tables">'
        f"<table><tr><th>classification</th><th>runs</th></tr>{rows}</table>"
        f"<table><tr><th>figure</th><th>value</th></tr>{fig_rows}</table>"
        f"<table><tr>{head}</tr>{kind_rows}</table></div>"
    )


def _failures(report: Mapping[str, Any]) -> str:
    failing = failing_runs(report)
    if not failing:
        return "<p>No run lost anything; no run is unexplained.</p>"
    items = []
    for o in failing:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in o["reasons"]) or "<li>(no reason given)</li>"
        items.append(
            f'<div class="failure {_e(o["classification"])}"><b>{_e(o["classification"])}</b> '
            f"{_e(o['schedule_line'])} (exit {_e(o['exit_code'])})<ul>{reasons}</ul>"
            f"replay: <code>{_e(o['replay_command'])}</code></div>"
        )
    return "".join(items)


def render_page(report: Mapping[str, Any]) -> str:
    """The whole page as one string."""
    outcomes: Sequence[Mapping[str, Any]] = report["outcomes"]
    duration = float(report["duration_sec"])
    scale = max([duration, *(float(o["wallclock_sec"]) for o in outcomes)]) * 1.02
    passed = exit_code(report) == 0
    legend = "".join(f'<span><i style="background:{COLORS[c]}"></i>{_e(c)}</span>' for c in CLASSIFICATIONS)
    runs = "".join(
        f'<div class="run" id="run-{int(o["index"])}"><div class="name">run {int(o["index"]):04d} '
        f'<b style="color:{COLORS.get(o["classification"], "#1f2328")}">{_e(o["classification"])}</b> '
        f"exit {_e(o['exit_code'])} {float(o['wallclock_sec']):.1f}s</div>"
        f"{_timeline(o, duration, scale)}</div>"
        for o in outcomes
    )
    faults = format_fault_list(report.get("fault_kinds", []))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>chaos {_e(report['campaign_id'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>Chaos campaign {_e(report['campaign_id'])}</h1>"
        f'<div class="meta">seed {_e(report["seed"])}, {_e(report["runs"])} planned runs of '
        f"{float(report['duration_sec']):g}s, shards {_e(', '.join(map(str, report.get('shards', []))))}<br>"
        f"faults: {_e(faults)}</div>"
        f'<p><span class="badge {"pass" if passed else "fail"}">{_e(summary_line(report))}</span></p>'
        f"<h2>Totals</h2>{_totals_tables(report)}"
        f"<h2>Lost and unexplained runs</h2>{_failures(report)}"
        f"<h2>Fault timelines</h2>"
        f'<div class="legend">{legend}<span>grey: the run, dashed line: planned end, dashed box: planned '
        f"fault, solid bar: measured strike..clear (faded: never cleared; tick: signal or terminate)"
        "</span></div>"
        f'<div class="run"><div class="name"></div>{_axis(scale)}</div>{runs}'
        "</body></html>\n"
    )


def write_page(report: Mapping[str, Any], directory: Path) -> Path:
    """Write `chaos.html` into `directory` atomically."""
    path = directory / PAGE_NAME
    atomic_write_bytes(path, render_page(report).encode("utf-8"))
    return path
