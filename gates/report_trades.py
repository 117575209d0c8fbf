"""The run's trades as the report shows them: one row per round trip, on the run's own clock.

Everything comes from the evidence directory alone (kpi.json's `trade_events`, each entry and
exit with its trade id, wall-clock epoch, premium, exit reason and PnL), so a report can be
drawn from a copied directory with no database. Older evidence without epochs or trade ids is
placed by tick (times the configured tick interval) and paired by symbol.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from evidence.documents import beat_epoch
from evidence.ramp_checks import STRATEGY_EXITS
from evidence.reader import EvidenceBundle


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class RunClock:
    """Turns an epoch (or, for old evidence, a tick) into seconds since the run started."""

    start_epoch: float | None
    tick_seconds: float | None

    @classmethod
    def of(cls, bundle: EvidenceBundle) -> RunClock:
        summary = bundle.chain_summary or {}
        start = _number(summary.get("run_started_epoch"))
        if start is None:
            epochs = [e for r in bundle.heartbeats if (e := beat_epoch(r)) is not None]
            start = min(epochs) if epochs else None
        run_config = ((bundle.manifest or {}).get("config") or {}).get("run") or {}
        tick = _number(run_config.get("tick_interval_sec")) if isinstance(run_config, Mapping) else None
        return cls(start, tick)

    def seconds(self, epoch: object) -> float | None:
        """Seconds since the run started, for a wall-clock epoch."""
        at = _number(epoch)
        return None if at is None or self.start_epoch is None else at - self.start_epoch

    def event_seconds(self, event: Mapping[str, Any]) -> float | None:
        """When a trade event happened, in seconds since run start: by its epoch, else by its tick."""
        at = self.seconds(event.get("epoch"))
        if at is not None:
            return at
        tick = _number(event.get("tick"))
        return None if tick is None or self.tick_seconds is None else tick * self.tick_seconds


@dataclass(frozen=True)
class TradeRow:
    """One round trip (or an entry still open at the end), as the table and the charts show it."""

    trade_id: str
    symbol: str
    entry_s: float | None
    entry_premium_pct: float | None
    exit_s: float | None = None
    exit_premium_pct: float | None = None
    reason: str | None = None
    pnl_usd: float | None = None

    def segment(self) -> tuple[list[float], list[float]] | None:
        """([entry s, exit s], [entry premium, exit premium]) when all four are known."""
        if self.entry_s is None or self.exit_s is None:
            return None
        if self.entry_premium_pct is None or self.exit_premium_pct is None:
            return None
        return [self.entry_s, self.exit_s], [self.entry_premium_pct, self.exit_premium_pct]

    @property
    def closeout(self) -> bool:
        """True when the trade was closed at stop (flatten, guard, recovery), not by the strategy."""
        return self.reason is not None and self.reason not in STRATEGY_EXITS


def trade_events(bundle: EvidenceBundle) -> list[Mapping[str, Any]]:
    """kpi.json's trade events, in the order the engine recorded them."""
    events = (bundle.kpi or {}).get("trade_events")
    return [e for e in events if isinstance(e, Mapping)] if isinstance(events, list) else []


def trade_rows(bundle: EvidenceBundle, clock: RunClock | None = None) -> list[TradeRow]:
    """Entries joined to their exits by trade id (by symbol for evidence without ids)."""
    clock = clock or RunClock.of(bundle)
    rows: list[TradeRow] = []
    open_by_key: dict[str, int] = {}
    for n, event in enumerate(trade_events(bundle)):
        symbol = str(event.get("symbol"))
        key = str(event.get("trade_id") or symbol)
        at, premium = clock.event_seconds(event), _number(event.get("premium_pct"))
        if event.get("event") == "entry":
            open_by_key[key] = len(rows)
            rows.append(TradeRow(str(event.get("trade_id") or f"#{n + 1}"), symbol, at, premium))
        elif event.get("event") == "exit":
            reason = event.get("reason")
            pnl = _number(event.get("pnl_usd"))
            index = open_by_key.pop(key, None)
            if index is None:
                rows.append(TradeRow(key, symbol, None, None, at, premium, str(reason or "—"), pnl))
                continue
            entry = rows[index]
            rows[index] = TradeRow(
                entry.trade_id, symbol, entry.entry_s, entry.entry_premium_pct, at, premium,
                None if reason is None else str(reason), pnl,
            )  # fmt: skip
    return rows


_SORT_SCRIPT: Final = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var down = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', down ? 'ascending' : 'descending');
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return down ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
"""Click a header to sort by it (again to reverse); inline, so the page stays one file."""

TABLE_CSS: Final = """
table.sortable th{cursor:pointer;user-select:none} table.sortable th:after{content:" ⇅";color:#8c959f}
table.sortable th[aria-sort=ascending]:after{content:" ▲"}
table.sortable th[aria-sort=descending]:after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.closeout td{background:#fff8c5}
.gain{color:#1a7f37} .loss{color:#cf222e}
"""


def _cell(value: float | str | None, text: str, css: str = "num") -> str:
    sort_key = "" if value is None else str(value)
    return f"<td class='{css}' data-v='{html.escape(sort_key)}'>{html.escape(text)}</td>"


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def trade_table(rows: Sequence[TradeRow]) -> str:
    """The sortable trade table, or a line saying there were no trades."""
    if not rows:
        return "<p class='meta'>No trades: kpi.json records no trade entries or exits.</p>"
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "trade", "symbol", "entry (s)", "entry premium (%)", "exit (s)", "exit premium (%)", "reason",
            "PnL (USD)",
        )
    )  # fmt: skip
    body = []
    for r in rows:
        pnl_css = "num" if r.pnl_usd is None else f"num {'gain' if r.pnl_usd > 0 else 'loss'}"
        body.append(
            f"<tr{' class=closeout' if r.closeout else ''}>"
            + _cell(r.trade_id, r.trade_id, "")
            + _cell(r.symbol, r.symbol, "")
            + _cell(r.entry_s, _fmt(r.entry_s, ".1f"))
            + _cell(r.entry_premium_pct, _fmt(r.entry_premium_pct, ".3f"))
            + _cell(r.exit_s, _fmt(r.exit_s, ".1f"))
            + _cell(r.exit_premium_pct, _fmt(r.exit_premium_pct, ".3f"))
            + _cell(r.reason or "open", r.reason or "open at end", "")
            + _cell(r.pnl_usd, _fmt(r.pnl_usd, "+.4f"), pnl_css)
            + "</tr>"
        )
    closed = [r for r in rows if r.reason is not None]
    closeouts = sum(r.closeout for r in closed)
    note = (
        f"{len(closed)} closed: {len(closed) - closeouts} by the strategy, {closeouts} at stop"
        " (highlighted). Times are seconds since run start. Click a column to sort."
    )
    return (
        f"<p class='meta'>{html.escape(note)}</p>"
        f"<table class='sortable'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"<script>{_SORT_SCRIPT}</script>"
    )
