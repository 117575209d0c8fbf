"""`report.html`: the verdict, the KPIs and the run's charts in one self-contained file.

Operators would rather glance at a heartbeat or PnL chart than read JSON. The charts are drawn by
matplotlib (Agg, no display needed) and embedded as inline SVG, so the file opens anywhere,
offline, with no scripts and no external resources.
"""

from __future__ import annotations

import html
import io
import logging
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import matplotlib

from evidence import names
from evidence.documents import beat_epoch
from evidence.invariants import heartbeat_limit
from evidence.judge import run_window
from evidence.writer import atomic_write_bytes
from gates.analyzer import FAIL, PASS, Analysis, Measure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class _FontCacheNotice(logging.Filter):
    """Drop matplotlib's one-time "building the font cache" notice, which it logs as a WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Matplotlib is building the font cache")


logging.getLogger("matplotlib.font_manager").addFilter(_FontCacheNotice())
matplotlib.use("Agg")

FIGSIZE: Final = (6.4, 3.1)
SVG_METADATA_KEYS: Final = ("Creator", "Date", "Format", "Type")
OK_COLOR: Final = "#1a7f37"
BAD_COLOR: Final = "#cf222e"
LINE_COLOR: Final = "#0969da"
MUTED: Final = "#6e7781"

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


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _xy(records: Sequence[object], x_key: str, y_key: str) -> tuple[list[float], list[float]]:
    """The (x, y) columns of the records that have both as numbers."""
    pairs = [
        (x, y)
        for r in records
        if isinstance(r, Mapping)
        and (x := _number(r.get(x_key))) is not None
        and (y := _number(r.get(y_key))) is not None
    ]
    return [x for x, _ in pairs], [y for _, y in pairs]


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata=dict.fromkeys(SVG_METADATA_KEYS))
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=100)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color=MUTED)
    ax.set_xticks([])
    ax.set_yticks([])


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


def _trade_events(analysis: Analysis) -> list[Mapping[str, Any]]:
    events = (analysis.bundle.kpi or {}).get("trade_events")
    return [e for e in events if isinstance(e, Mapping)] if isinstance(events, list) else []


def pnl_chart(analysis: Analysis) -> str:
    """Cumulative realized PnL at each exit; from heartbeat snapshots when no trade events exist."""
    exits = [e for e in _trade_events(analysis) if e.get("event") == "exit" and _number(e.get("pnl_usd"))]
    if exits:
        fig, ax = _figure("Realized PnL", "tick", "cumulative PnL (USD)")
        ticks, total, curve = [0.0], 0.0, [0.0]
        for event in exits:
            total += _number(event.get("pnl_usd")) or 0.0
            ticks.append(_number(event.get("tick")) or ticks[-1])
            curve.append(total)
        ax.step(ticks, curve, where="post", color=LINE_COLOR, linewidth=1.4)
        ax.fill_between(ticks, curve, step="post", alpha=0.12, color=LINE_COLOR)
    else:
        fig, ax = _figure("Net PnL at each heartbeat", "seconds since first beat", "net PnL (USD)")
        beats = analysis.bundle.heartbeats
        series = [
            (t, p)
            for r in beats
            if (t := beat_epoch(r)) is not None
            and (p := _number((r.get("kpi") or {}).get("net_pnl_usd"))) is not None
        ]
        if not series:
            _empty(ax, "no trades and no PnL snapshots")
            return _svg(fig)
        first = series[0][0]
        ax.plot([t - first for t, _ in series], [p for _, p in series], color=LINE_COLOR, marker=".")
    ax.axhline(0.0, color=MUTED, linewidth=0.8)
    return _svg(fig)


def premium_chart(analysis: Analysis) -> str:
    """Premium at every trade entry and exit, entry joined to its exit, over the premium series if any."""
    fig, ax = _figure("Premium with trade entries and exits", "tick", "premium (%)")
    kpi = analysis.bundle.kpi or {}
    series = kpi.get("premium_series")
    if isinstance(series, list) and series:
        ticks, premiums = _xy(series, "tick", "premium_pct")
        ax.plot(ticks, premiums, color=MUTED, linewidth=0.8, label="best premium")
    events = _trade_events(analysis)
    if not events:
        _empty(ax, "no trade events in kpi.json")
        return _svg(fig)
    opened: dict[str, tuple[float, float]] = {}
    for event in events:
        tick, premium = _number(event.get("tick")), _number(event.get("premium_pct"))
        if tick is None or premium is None:
            continue
        symbol = str(event.get("symbol"))
        if event.get("event") == "entry":
            opened[symbol] = (tick, premium)
        elif symbol in opened:
            start = opened.pop(symbol)
            ax.plot([start[0], tick], [start[1], premium], color=MUTED, linewidth=0.7, alpha=0.7)
    for kind, marker, color in (("entry", "^", OK_COLOR), ("exit", "v", BAD_COLOR)):
        chosen = [e for e in events if e.get("event") == kind]
        if chosen:
            xs, ys = _xy(chosen, "tick", "premium_pct")
            ax.scatter(xs, ys, marker=marker, color=color, label=kind, zorder=3)
    ax.legend(fontsize=8, loc="best")
    return _svg(fig)


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
    """Resident memory at each beat: the long-run leak check at a glance."""
    fig, ax = _figure("Memory (RSS) at each heartbeat", "seconds since first beat", "RSS (MB)")
    series = [
        (t, m)
        for r in analysis.bundle.heartbeats
        if (t := beat_epoch(r)) is not None and (m := _number(r.get("rss_mb"))) is not None
    ]
    if not series:
        _empty(ax, "no heartbeat lines")
        return _svg(fig)
    first = series[0][0]
    ax.plot([t - first for t, _ in series], [m for _, m in series], color=LINE_COLOR, marker=".")
    return _svg(fig)


CHARTS: Final = (
    ("Heartbeat gaps over time; the dashed line is the density limit.", heartbeat_gap_chart),
    ("PnL curve.", pnl_chart),
    ("Premium with trade entries (▲) and exits (▼).", premium_chart),
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
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{verdict} · {title}</title><style>{_CSS}</style></head>
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
