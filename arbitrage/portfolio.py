"""Positions, realized PnL and the KPI counters the heartbeat and the guards read."""

from __future__ import annotations

from dataclasses import dataclass

from arbitrage.execution import LegFill, PairFill
from arbitrage.strategy import Direction, OpenPosition


@dataclass(frozen=True, slots=True)
class Position:
    """A held pair of legs, keyed by its run-unique trade id."""

    trade_id: str
    correlation_id: str
    symbol: str
    direction: Direction
    entry_tick: int
    entry: PairFill

    def view(self) -> OpenPosition:
        return OpenPosition(self.symbol, self.direction, self.entry.quote.qty, self.entry_tick)


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A round trip with its realized PnL in both currencies."""

    position: Position
    exit: PairFill
    pnl_krw: float
    pnl_usd: float
    reason: str


def _signed_cash(leg: LegFill) -> float:
    """Quote-currency cash a leg moved: + for a sell, - for a buy, fees always paid."""
    cash = leg.notional if leg.side == "sell" else -leg.notional
    return cash - leg.fee


def realized_pnl(entry: PairFill, exit_fill: PairFill) -> tuple[float, float]:
    """(KRW, USD) PnL of a round trip; the Upbit leg's KRW is converted at the exit rate."""
    krw = _signed_cash(entry.upbit) + _signed_cash(exit_fill.upbit)
    usdt = _signed_cash(entry.binance) + _signed_cash(exit_fill.binance)
    fx = exit_fill.quote.krw_per_usdt
    usd = krw / fx + usdt
    return usd * fx, usd


class Portfolio:
    """Open positions (one per symbol at most) and the running KPIs of the run."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.closed_trades = 0
        self.wins = 0
        self.losses = 0
        self.net_pnl_krw = 0.0
        self.net_pnl_usd = 0.0
        self.peak_pnl_usd = 0.0
        self.consecutive_losses = 0
        self.closed_by_reason: dict[str, int] = {}
        """Closed trades by exit reason (`threshold`, `max_hold`, `flatten`, `guard`, `recovery`)."""
        self._next_trade = 0

    def next_trade_id(self) -> str:
        self._next_trade += 1
        return f"T{self._next_trade:06d}"

    def open(self, trade_id: str, correlation_id: str, fill: PairFill, tick: int) -> Position:
        quote = fill.quote
        position = Position(trade_id, correlation_id, quote.symbol, quote.direction, tick, fill)
        self.positions[quote.symbol] = position
        return position

    def close(self, position: Position, exit_fill: PairFill, reason: str) -> ClosedTrade:
        del self.positions[position.symbol]
        pnl_krw, pnl_usd = realized_pnl(position.entry, exit_fill)
        self.closed_trades += 1
        self.closed_by_reason[reason] = self.closed_by_reason.get(reason, 0) + 1
        self.net_pnl_krw += pnl_krw
        self.net_pnl_usd += pnl_usd
        if pnl_usd > 0:
            self.wins += 1
            self.consecutive_losses = 0
        else:
            self.losses += 1
            self.consecutive_losses += 1
        self.peak_pnl_usd = max(self.peak_pnl_usd, self.net_pnl_usd)
        return ClosedTrade(position, exit_fill, pnl_krw, pnl_usd, reason)

    @property
    def drawdown_pct(self) -> float:
        """Drop from the peak realized PnL, in percent of the peak (0 until there is a peak)."""
        if self.peak_pnl_usd <= 0:
            return 0.0
        return max(0.0, (self.peak_pnl_usd - self.net_pnl_usd) / self.peak_pnl_usd * 100.0)

    def held(self) -> dict[str, OpenPosition]:
        return {symbol: position.view() for symbol, position in self.positions.items()}
