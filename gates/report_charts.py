"""The report's time charts, all on one axis: seconds since the run started.

Drawn by matplotlib (Agg, no display) as inline SVG, so the page stays one file that opens
offline. PnL is a step curve with its final value written on it and the trades closed at stop
marked apart from the strategy's; premiums are coloured and labelled per symbol; memory starts at
zero with its fitted growth rate written on the chart, so a small rise does not look like a leak.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Final

from evidence.documents import beat_epoch
from evidence.reader import EvidenceBundle
from evidence.rss_growth import rss_growth_mb_per_hour
from gates.report_trades import RunClock, TradeRow, trade_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class _FontCacheNotice(logging.Filter):
    """Drop matplotlib's one-time "building the font cache" notice, which it logs as a WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Matplotlib is building the font cache")


logging.getLogger("matplotlib.font_manager").addFilter(_FontCacheNotice())

FIGSIZE: Final = (6.4, 3.1)
SVG_METADATA_KEYS: Final = ("Creator", "Date", "Format", "Type")
OK_COLOR: Final = "#1a7f37"
BAD_COLOR: Final = "#cf222e"
LINE_COLOR: Final = "#0969da"
CLOSEOUT_COLOR: Final = "#bc4c00"
MUTED: Final = "#6e7781"
SYMBOL_COLORS: Final = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
"""matplotlib's tab10: ten symbols, ten distinct colours."""
RATE_MIN_SPAN_SEC: Final = 300.0
"""Below this span a fitted MB/h rate extrapolates allocator noise, so only the rise is shown."""
TIME_AXIS: Final = "seconds since run start"


def number(value: object) -> float | None:
    """A JSON number as a float (bools are not numbers here)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def svg(fig: Figure) -> str:
    """The figure as inline SVG markup, with no dates or tool names in it."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata=dict.fromkeys(SVG_METADATA_KEYS))
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    """One chart in the report's style."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=100)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    return fig, ax


def empty(ax: Axes, message: str) -> None:
    """Say in the chart why there is nothing to draw."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color=MUTED)
    ax.set_xticks([])
    ax.set_yticks([])


def _cols(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in points], [y for _, y in points]


def _run_end(bundle: EvidenceBundle, clock: RunClock) -> float | None:
    summary = bundle.chain_summary or {}
    end = clock.seconds(summary.get("run_ended_epoch"))
    return end if end is not None else number(summary.get("duration_seconds"))


def _annotate_final(ax: Axes, x: float, value: float, label: str) -> None:
    ax.axhline(value, color=MUTED, linewidth=0.7, linestyle=":")
    ax.annotate(
        f"{label} {value:+.4f} USD", (x, value), xytext=(-6, 8), textcoords="offset points", ha="right",
        fontsize=9, fontweight="bold", color=OK_COLOR if value >= 0 else BAD_COLOR,
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": MUTED, "lw": 0.6},
    )  # fmt: skip


def _beat_pnl(bundle: EvidenceBundle, clock: RunClock) -> list[tuple[float, float]]:
    return [
        (t, p)
        for r in bundle.heartbeats
        if (t := clock.seconds(beat_epoch(r))) is not None
        and (p := number((r.get("kpi") or {}).get("net_pnl_usd"))) is not None
    ]


def pnl_chart_of(bundle: EvidenceBundle) -> str:
    """Cumulative realized PnL at each exit, closeouts marked, the final value written on the chart."""
    clock = RunClock.of(bundle)
    fig, ax = figure("Realized PnL", TIME_AXIS, "cumulative PnL (USD)")
    exits = sorted(
        (r for r in trade_rows(bundle, clock) if r.exit_s is not None and r.pnl_usd is not None),
        key=lambda r: r.exit_s or 0.0,
    )
    end = _run_end(bundle, clock)
    if not exits:
        series = _beat_pnl(bundle, clock)
        if not series:
            empty(ax, "no closed trades and no PnL in the heartbeat")
            return svg(fig)
        xs, ys = [t for t, _ in series], [p for _, p in series]
        ax.plot(xs, ys, color=LINE_COLOR, marker=".", label="net PnL at each heartbeat")
        ax.text(0.02, 0.92, "no closed trades", transform=ax.transAxes, fontsize=9, color=MUTED)
        _annotate_final(ax, max(xs[-1], end or xs[-1]), ys[-1], "final")
        ax.set_xlim(left=0)
        ax.legend(fontsize=8, loc="lower left")
        return svg(fig)
    xs, curve, total = [0.0], [0.0], 0.0
    points: list[tuple[float, float, TradeRow]] = []
    for row in exits:
        assert row.exit_s is not None and row.pnl_usd is not None
        total += row.pnl_usd
        xs.append(row.exit_s)
        curve.append(total)
        points.append((row.exit_s, total, row))
    last_x = max(xs[-1], end or xs[-1])
    xs.append(last_x)
    curve.append(total)
    ax.step(xs, curve, where="post", color=LINE_COLOR, linewidth=1.4, label="cumulative PnL")
    ax.fill_between(xs, curve, step="post", alpha=0.10, color=LINE_COLOR)
    strategy = [(x, y) for x, y, r in points if not r.closeout]
    closeouts = [(x, y) for x, y, r in points if r.closeout]
    if strategy:
        ax.scatter(*_cols(strategy), s=10, color=LINE_COLOR, zorder=3, label="strategy exit")
    if closeouts:
        ax.scatter(
            *_cols(closeouts), s=28, marker="X", color=CLOSEOUT_COLOR, zorder=4,
            label=f"closed at stop ({len(closeouts)})",
        )  # fmt: skip
        ax.axvline(min(x for x, _ in closeouts), color=CLOSEOUT_COLOR, linewidth=0.8, linestyle="--")
    ax.axhline(0.0, color=MUTED, linewidth=0.8)
    _annotate_final(ax, last_x, total, "final")
    ax.set_xlim(left=0)
    ax.legend(fontsize=8, loc="upper left")
    return svg(fig)


def premium_chart_of(bundle: EvidenceBundle) -> str:
    """Each trade as a segment from its entry premium to its exit premium, coloured per symbol."""
    clock = RunClock.of(bundle)
    fig, ax = figure("Premium at trade entry (▲) and exit (▼), per symbol", TIME_AXIS, "gross premium (%)")
    series = (bundle.kpi or {}).get("premium_series")
    if isinstance(series, list) and series:
        pts = [
            (t, p)
            for e in series
            if isinstance(e, dict)
            and (t := clock.event_seconds(e)) is not None
            and (p := number(e.get("premium_pct"))) is not None
        ]
        if pts:
            ax.plot(*_cols(pts), color=MUTED, linewidth=0.8, label="best premium")
    rows = [r for r in trade_rows(bundle, clock) if r.entry_s is not None or r.exit_s is not None]
    if not rows:
        empty(ax, "no trades")
        return svg(fig)
    symbols = sorted({r.symbol for r in rows})
    for i, symbol in enumerate(symbols):
        color = SYMBOL_COLORS[i % len(SYMBOL_COLORS)]
        mine = [r for r in rows if r.symbol == symbol]
        entries = [
            (x, y) for r in mine if (x := r.entry_s) is not None and (y := r.entry_premium_pct) is not None
        ]
        exits = [
            (x, y) for r in mine if (x := r.exit_s) is not None and (y := r.exit_premium_pct) is not None
        ]
        for segment in (r.segment() for r in mine):
            if segment is not None:
                ax.plot(*segment, color=color, linewidth=0.8, alpha=0.6)
        if entries:
            ax.scatter(*_cols(entries), marker="^", s=18, color=color, zorder=3,
                       label=f"{symbol} ({len(mine)} trade{'' if len(mine) == 1 else 's'})")  # fmt: skip
        if exits:
            ax.scatter(*_cols(exits), marker="v", s=18, color=color, zorder=3)
    ax.set_xlim(left=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="symbol", title_fontsize=8)
    return svg(fig)


def rss_chart_of(bundle: EvidenceBundle) -> str:
    """Resident memory at each beat on an axis from zero, with the fitted growth rate written on it."""
    clock = RunClock.of(bundle)
    fig, ax = figure("Memory (RSS) at each heartbeat", TIME_AXIS, "RSS (MB)")
    series = [
        (t, m)
        for r in bundle.heartbeats
        if (t := clock.seconds(beat_epoch(r))) is not None and (m := number(r.get("rss_mb"))) is not None
    ]
    if not series:
        empty(ax, "no heartbeat lines")
        return svg(fig)
    xs, ys = [t for t, _ in series], [m for _, m in series]
    ax.plot(xs, ys, color=LINE_COLOR, marker=".")
    ax.set_ylim(0, max(ys) * 1.15)
    ax.set_xlim(left=0)
    rate = rss_growth_mb_per_hour(series, 0.0)
    span = xs[-1] - xs[0]
    note = f"{ys[0]:.1f} → {ys[-1]:.1f} MB ({ys[-1] - ys[0]:+.1f} MB over {span:.0f} s)"
    if rate is not None and span >= RATE_MIN_SPAN_SEC:
        note += f" · fitted growth {rate:+.1f} MB/h"
    ax.text(0.02, 0.06, note, transform=ax.transAxes, fontsize=8, color=MUTED)
    return svg(fig)
