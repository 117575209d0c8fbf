"""`report.html`: the verdict, the KPIs and the run's charts in one self-contained file.

Operators would rather glance at a heartbeat or PnL chart than read JSON. The charts are drawn by
matplotlib (Agg, no display needed) and embedded as inline SVG, on one time axis (seconds since
run start); the trades are a table sortable by any column through a few lines of inline script.
The file opens anywhere, offline, with no external resources.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

from evidence import names
from evidence.invariants import heartbeat_limit
from evidence.judge import run_window
from evidence.writer import atomic_write_bytes
from gates.analyzer import FAIL, PASS, Analysis, Measure
from gates.report_charts import BAD_COLOR, LINE_COLOR, MUTED, pnl_chart_of, premium_chart_of, rss_chart_of
from gates.report_charts import empty as _empty
from gates.report_charts import figure as _figure
from gates.report_charts import number as _number
from gates.report_charts import svg as _svg
from gates.report_trades import TABLE_CSS, trade_rows, trade_table

_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#6e7781;font-size:13px}
.badge{display:inline-block;padding:6px 16px;border-radius:6px;color:#fff;font-weight:700;font-size:20px}
.GO{background:#1a7f37} .NO-GO{background:#cf222e} .CONDITIONAL-GO{background:#9a6700}
table{border-collapse:collapse;font-size:13px;width:100%} td,th{border:1px solid #d0d7de;padding:4px 8px;
text-align:left;vertical-align:top} th{background:#f6f8fa}
.pass{color:#1a7f37;font-weight:600} .fail{color:#cf222e;font-weight:700} .na{color:#6e7781}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(600px,1fr));gap:16px}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px} figure svg{width:100%;height:auto}
figcaption{font-size:12px;color:#6e7781} .kpis{columns:2;column-gap:24px}
"""


def heartbeat_gap_chart(analysis: Analysis) -> str:
    """Gap before each beat (and before the run end) against time since the run started."""
    fig, ax = _figure("Heartbeat gaps", "seconds since run start", "gap (s)")
    bundle = analysis.bundle
    epochs = sorted(bundle.beat_epochs)
    window = run_window(bundle)
    if window is None or not epochs:
        _empty(ax, "no heartbeat lines")
        return _svg(fig)
    start, end = window.started, window.ended
    points = [start, *epochs, end]
    xs = [later - start for later in points[1:]]
    gaps = [later - earlier for earlier, later in pairwise(points)]
    ax.plot(xs, gaps, color=LINE_COLOR, marker="o", markersize=3, linewidth=1, label="gap")
    limit = heartbeat_limit(window.interval)
    ax.axhline(limit, color=BAD_COLOR, linestyle="--", linewidth=1, label=f"limit {limit:g}s")
    over = [(x, g) for x, g in zip(xs, gaps, strict=True) if g > limit]
    if over:
        ax.scatter(*zip(*over, strict=True), color=BAD_COLOR, zorder=3, label="over limit")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper right")
    return _svg(fig)


def pnl_chart(analysis: Analysis) -> str:
    """Cumulative realized PnL over the run, closeouts marked, the final PnL written on it."""
    return pnl_chart_of(analysis.bundle)


def premium_chart(analysis: Analysis) -> str:
    """Premium at every trade entry and exit, entry joined to its exit, labelled per symbol."""
    return premium_chart_of(analysis.bundle)


def _percentile_note(latency: object) -> str:
    if not isinstance(latency, Mapping):
        return ""
    parts = [
        f"{k} {v:.2f}" for k in ("p50", "p95", "p99", "max") if (v := _number(latency.get(k))) is not None
    ]
    return " · ".join(parts) + " ms" if parts else ""


def latency_chart(analysis: Analysis) -> str:
    """Loop latency histogram (`kpi.loop_latency_histogram`), or the recorded percentiles without one."""
    kpi = analysis.bundle.kpi or {}
    histogram, latency = kpi.get("loop_latency_histogram"), kpi.get("loop_latency_ms")
    note = _percentile_note(latency)
    if (
        isinstance(histogram, Mapping)
        and isinstance(histogram.get("counts"), list)
        and any(histogram["counts"])
    ):
        fig, ax = _figure("Loop latency distribution", "loop latency (ms)", "loops")
        bounds = [b for b in histogram.get("bounds_ms", []) if _number(b) is not None]
        labels = [f"≤{b:g}" for b in bounds] + [f">{bounds[-1]:g}" if bounds else "all"]
        counts = [int(c) for c in histogram["counts"]][: len(labels)]
        used = [i for i, c in enumerate(counts) if c]
        lo, hi = max(0, used[0] - 1), min(len(counts), used[-1] + 2)
        bars = ax.bar(labels[lo:hi], counts[lo:hi], color=LINE_COLOR)
        ax.set_ylim(top=max(counts) * 1.25)
        ax.bar_label(bars, fontsize=8)
        ax.tick_params(axis="x", labelrotation=45)
        if note:
            ax.text(0.98, 0.95, note, ha="right", va="top", transform=ax.transAxes, fontsize=8, color=MUTED)
        return _svg(fig)
    fig, ax = _figure(
        "Loop latency percentiles (no histogram in kpi.json)", "percentile", "loop latency (ms)"
    )
    values = (
        {k: _number(latency.get(k)) for k in ("p50", "p95", "p99", "max")}
        if isinstance(latency, Mapping)
        else {}
    )
    shown = {k: v for k, v in values.items() if v is not None}
    if not shown:
        _empty(ax, "no loop latency recorded")
        return _svg(fig)
    bars = ax.bar(list(shown), list(shown.values()), color=LINE_COLOR)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    return _svg(fig)


def rss_chart(analysis: Analysis) -> str:
    """Resident memory at each beat, from zero, with its growth rate: the leak check at a glance."""
    return rss_chart_of(analysis.bundle)


CHARTS: Final = (
    ("Heartbeat gaps over time; the dashed line is the density limit.", heartbeat_gap_chart),
    ("PnL curve; trades closed at stop are marked ✕ after the dashed line.", pnl_chart),
    ("Premium with trade entries (▲) and exits (▼), one colour per symbol.", premium_chart),
    ("Loop latency distribution.", latency_chart),
    ("Memory over the run.", rss_chart),
)


def _cell(value: Measure) -> str:
    if isinstance(value, float):
        return html.escape(f"{value:.4g}" if abs(value) < 1000 else f"{value:,.2f}")
    return html.escape("—" if value is None else str(value))


def _criteria_rows(analysis: Analysis) -> str:
    rows = []
    for c in analysis.criteria:
        css = {PASS: "pass", FAIL: "fail"}.get(c.verdict, "na")
        rows.append(
            f"<tr><td class='{css}'>{html.escape(c.verdict.upper() if c.verdict == FAIL else c.verdict)}</td>"
            f"<td>{html.escape(c.priority)}</td><td>{html.escape(c.name)}</td><td>{_cell(c.observed)}</td><td>{_cell(c.limit)}</td>"
            f"<td>{html.escape(c.detail)}</td></tr>"
        )
    return "".join(rows)


def _kpi_rows(kpis: Mapping[str, Measure]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in kpis.items())


def _kpi_groups(analysis: Analysis) -> str:
    return "".join(
        f"<h3>{html.escape(group)}</h3><div class='kpis'><table>{_kpi_rows(kpis)}</table></div>"
        for group, kpis in analysis.kpi_groups.items()
    )


def render(analysis: Analysis, charts: Sequence[tuple[str, Any]] = CHARTS) -> str:
    """The whole report as one HTML string."""
    verdict = analysis.verdict
    failed = ", ".join(analysis.failed)
    figures = "".join(
        f"<figure>{draw(analysis)}<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, draw in charts
    )
    title = html.escape(analysis.run_id or str(analysis.evidence_dir))
    CSS = _CSS + TABLE_CSS
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{verdict} · {title}</title><style>{CSS}</style></head>
<body>
<h1>Run {title}</h1>
<p class="meta">evidence: {html.escape(str(analysis.evidence_dir))} · {html.escape(analysis.analyzed_at)}</p>
<p><span class="badge {verdict.replace(" ", "-")}">{verdict}</span>
{f'<span class="fail">failed: {html.escape(failed)}</span>' if failed else ""}</p>
<h2>Criteria</h2>
<table><tr><th>verdict</th><th>priority</th><th>criterion</th><th>observed</th><th>limit</th><th>detail</th></tr>
{_criteria_rows(analysis)}</table>
<h2>Charts</h2>
<div class="charts">{figures}</div>
<h2>Trades</h2>
{trade_table(trade_rows(analysis.bundle))}
<h2>KPIs</h2>
<div class="kpis"><table>{_kpi_rows(analysis.kpis)}</table></div>
<h2>D77-4 KPIs</h2>
{_kpi_groups(analysis)}
</body></html>
"""


def write_report(analysis: Analysis, out_dir: Path | None = None) -> Path:
    """Write `report.html` atomically (into the evidence directory unless told otherwise)."""
    target = (out_dir or analysis.evidence_dir) / names.REPORT_HTML
    atomic_write_bytes(target, render(analysis).encode("utf-8"))
    return target
