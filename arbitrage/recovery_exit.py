"""The exit leg that settles a paper position a crashed run left open, priced as the engine prices one.

The entry is rebuilt from its stored row, the exit is quoted with `exit_quote` on the current book
and filled by the `PaperExecutor`, and the PnL comes from `realized_pnl`: the same three steps a
running engine takes, so a recovery exit is indistinguishable from a flatten except for its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from arbitrage.config import StrategyConfig
from arbitrage.execution import LegFill, PairFill, PaperExecutor
from arbitrage.ledger import LegRow
from arbitrage.market.book import MarketSnapshot
from arbitrage.portfolio import realized_pnl
from arbitrage.strategy import Direction, ExitIntent, OpenPosition, Quote, Strategy, exit_quote

RECOVERY_REASON = "recovery"

OPEN_ENTRY_COLUMNS = (
    "run_id", "trade_id", "correlation_id", "symbol", "direction", "qty", "upbit_side", "upbit_vwap_krw",
    "upbit_fee_krw", "binance_side", "binance_vwap_usdt", "binance_fee_usdt", "krw_per_usdt",
    "premium_net_pct", "tick",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OpenEntry:
    """An entry leg of a crashed run with no exit leg, as stored; `last_tick` is the run's last tick."""

    run_id: str
    trade_id: str
    correlation_id: str
    symbol: str
    direction: Direction
    qty: float
    upbit_side: str
    upbit_vwap_krw: float
    upbit_fee_krw: float
    binance_side: str
    binance_vwap_usdt: float
    binance_fee_usdt: float
    krw_per_usdt: float
    premium_net_pct: float
    tick: int
    last_tick: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OpenEntry:
        """From a dict row of the columns above plus `last_tick` (NUMERIC arrives as Decimal)."""
        values: dict[str, Any] = {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
        return cls(**{name: values[name] for name in (*OPEN_ENTRY_COLUMNS, "last_tick")})

    def position(self) -> OpenPosition:
        return OpenPosition(self.symbol, self.direction, self.qty, self.tick)

    def fill(self) -> PairFill:
        """The entry as the engine held it: paper fills move qty x vwap on both venues."""
        quote = Quote(
            self.symbol, self.direction, self.qty, self.upbit_vwap_krw, self.binance_vwap_usdt,
            self.krw_per_usdt, self.premium_net_pct, self.premium_net_pct,
        )  # fmt: skip
        upbit = LegFill(
            "upbit", "sell" if self.upbit_side == "sell" else "buy", self.qty, self.upbit_vwap_krw,
            self.qty * self.upbit_vwap_krw, self.upbit_fee_krw,
        )  # fmt: skip
        binance = LegFill(
            "binance", "sell" if self.binance_side == "sell" else "buy", self.qty, self.binance_vwap_usdt,
            self.qty * self.binance_vwap_usdt, self.binance_fee_usdt,
        )  # fmt: skip
        return PairFill(quote, upbit, binance)


def recovery_exit(
    entry: OpenEntry, snapshot: MarketSnapshot, strategy: StrategyConfig, seed: int
) -> LegRow | str:
    """The exit leg closing `entry` on `snapshot`, or why it cannot be priced there."""
    if entry.symbol not in snapshot.upbit or entry.symbol not in snapshot.binance:
        return f"no usable book for {entry.symbol}"
    quote = exit_quote(snapshot, entry.position(), Strategy(strategy, 1.0).fees)
    if quote is None:
        return f"book too thin for {entry.qty:.8f} {entry.symbol}"
    fill = PaperExecutor(strategy, seed).exit(ExitIntent(entry.position(), quote, RECOVERY_REASON))
    pnl_krw, pnl_usd = realized_pnl(entry.fill(), fill)
    return LegRow.of_fill(
        entry.run_id, entry.trade_id, entry.correlation_id, entry.symbol, entry.direction, "exit", fill,
        RECOVERY_REASON, max(entry.tick, entry.last_tick), (pnl_krw, pnl_usd),
    )  # fmt: skip
