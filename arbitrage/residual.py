"""Each entry's hedge residual, as the run goes, and the `kpi.json["residual"]` block it adds up to.

What a residual is, and how a run's total is judged, is `evidence.residual_rule`; this is the
engine's side: the tally the trader feeds with every filled entry.
Paper fills are exact (both legs at the quote's quantity), so a paper run's residual is 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evidence.residual_rule import leg_residual, residual_bound_usd

if TYPE_CHECKING:
    from arbitrage.config import ResidualConfig
    from arbitrage.execution import PairFill


def entry_residual(fill: PairFill) -> dict[str, float]:
    """What an entry leaves unhedged while the trade is open: `residual_qty` (coin) and `residual_usd`."""
    qty, usd = leg_residual(fill.upbit.qty, fill.binance.qty, fill.binance.vwap)
    return {"residual_qty": qty, "residual_usd": usd}


def exit_remainder(entry: PairFill, exit_fill: PairFill) -> dict[str, float]:
    """What the round trip leaves behind once closed: `remainder_qty` (coin) and `remainder_usd`."""
    qty, usd = leg_residual(
        entry.upbit.qty - exit_fill.upbit.qty,
        entry.binance.qty - exit_fill.binance.qty,
        exit_fill.binance.vwap,
    )
    return {"remainder_qty": qty, "remainder_usd": usd}


class ResidualTally:
    """The run's entries and exits: count, entry notional, and the sum of |residual| in USD and per coin.

    An Upbit buy by KRW cost makes the residual appear at the entry (held until the exit, which
    sells exactly what was bought) or, for a trade that sold on Upbit first, at the exit (the buy
    back differs from what was sold, and the difference stays on Upbit): both count.
    """

    def __init__(self) -> None:
        self.trades = 0
        self.entry_notional_usd = 0.0
        self.total_abs_usd = 0.0
        self.abs_qty_by_symbol: dict[str, float] = {}
        self.largest_abs_usd = 0.0

    def _count(self, symbol: str, qty: float, usd: float) -> None:
        self.total_abs_usd += abs(usd)
        self.largest_abs_usd = max(self.largest_abs_usd, abs(usd))
        self.abs_qty_by_symbol[symbol] = self.abs_qty_by_symbol.get(symbol, 0.0) + abs(qty)

    def add_entry(self, symbol: str, fill: PairFill) -> dict[str, float]:
        """Count one filled entry; returns its residual (what the trade's entry events report)."""
        residual = entry_residual(fill)
        self.trades += 1
        self.entry_notional_usd += fill.binance.notional
        self._count(symbol, residual["residual_qty"], residual["residual_usd"])
        return residual

    def add_exit(self, symbol: str, entry: PairFill, exit_fill: PairFill) -> dict[str, float]:
        """Count one filled exit; returns what the round trip left (what its exit events report)."""
        remainder = exit_remainder(entry, exit_fill)
        self._count(symbol, remainder["remainder_qty"], remainder["remainder_usd"])
        return remainder

    def kpi(self, config: ResidualConfig) -> dict[str, Any]:
        """`kpi.json["residual"]`: the totals and the configured bound they are held to."""
        block: dict[str, Any] = {
            "trades": self.trades,
            "total_abs_usd": round(self.total_abs_usd, 6),
            "largest_abs_usd": round(self.largest_abs_usd, 6),
            "abs_qty_by_symbol": {k: round(v, 8) for k, v in sorted(self.abs_qty_by_symbol.items())},
            "entry_notional_usd": round(self.entry_notional_usd, 6),
            "max_pct_of_notional": config.max_pct_of_notional,
        }
        block["bound_usd"] = round(residual_bound_usd(block) or 0.0, 6)
        return block
