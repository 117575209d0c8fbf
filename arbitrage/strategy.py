"""Premium -> intents: when to open a position on a symbol and when to close it.

Both directions of the Korean premium are priced from depth-walked VWAPs for the actual
order size and net of both venues' taker fees, never from mid prices:

- `upbit_rich`: sell on Upbit (KRW), buy on Binance (USDT). Pays when Upbit is dearer.
- `binance_rich`: sell on Binance, buy on Upbit. Pays when Binance is dearer.

Time is counted in ticks times the tick interval (model time), so a tick-bounded run with a
given seed makes the same decisions however fast the machine is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from arbitrage.config import StrategyConfig
from arbitrage.market.book import MarketSnapshot, OrderBook, walk_depth

Direction = Literal["upbit_rich", "binance_rich"]
DIRECTIONS: tuple[Direction, ...] = ("upbit_rich", "binance_rich")


@dataclass(frozen=True, slots=True)
class Quote:
    """What trading `qty` of `symbol` in `direction` would fetch right now, on both venues.

    `upbit_vwap_krw` and `binance_vwap_usdt` are the depth-walked prices of the two legs;
    `net_pct` is the premium captured (entry) or paid (exit) after fees, in percent.
    """

    symbol: str
    direction: Direction
    qty: float
    upbit_vwap_krw: float
    binance_vwap_usdt: float
    krw_per_usdt: float
    gross_pct: float
    net_pct: float


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """The strategy's view of a held position: enough to price and time its exit."""

    symbol: str
    direction: Direction
    qty: float
    entry_tick: int


@dataclass(frozen=True, slots=True)
class EntryIntent:
    """Open `quote.symbol` in `quote.direction`: the detected opportunity, sized.

    `considered` holds both directions' quotes (upbit_rich, binance_rich; None where a side could
    not be priced), so that a decision trace can show the premium the entry was chosen over.
    """

    quote: Quote
    considered: tuple[Quote | None, Quote | None] = (None, None)


@dataclass(frozen=True, slots=True)
class ExitIntent:
    """Close a held position; `reason` is the strategy's `threshold` or `max_hold`, or the stop-time
    `flatten` (`guard` when a guard trip stopped the run), or `recovery` for a crashed run's leftover."""

    position: OpenPosition
    quote: Quote
    reason: str


def entry_quote(
    snapshot: MarketSnapshot, symbol: str, direction: Direction, qty: float, fees: tuple[float, float]
) -> Quote | None:
    """Price opening `direction`: sell the dear venue at its bids, buy the cheap one at its asks."""
    upbit, binance = snapshot.upbit[symbol], snapshot.binance[symbol]
    fee_u, fee_b = fees
    fx = snapshot.krw_per_usdt
    if direction == "upbit_rich":
        sell_u, buy_b = walk_depth(upbit, "sell", qty), walk_depth(binance, "buy", qty)
        if sell_u is None or buy_b is None:
            return None
        upbit_usd = sell_u.vwap / fx
        gross = upbit_usd / buy_b.vwap - 1.0
        net = upbit_usd * (1.0 - fee_u) / (buy_b.vwap * (1.0 + fee_b)) - 1.0
        return Quote(symbol, direction, qty, sell_u.vwap, buy_b.vwap, fx, gross * 100.0, net * 100.0)
    sell_b, buy_u = walk_depth(binance, "sell", qty), walk_depth(upbit, "buy", qty)
    if sell_b is None or buy_u is None:
        return None
    upbit_usd = buy_u.vwap / fx
    gross = sell_b.vwap / upbit_usd - 1.0
    net = sell_b.vwap * (1.0 - fee_b) / (upbit_usd * (1.0 + fee_u)) - 1.0
    return Quote(symbol, direction, qty, buy_u.vwap, sell_b.vwap, fx, gross * 100.0, net * 100.0)


def exit_quote(snapshot: MarketSnapshot, position: OpenPosition, fees: tuple[float, float]) -> Quote | None:
    """Price closing a position: the premium still paid to unwind it, fees included.

    For `upbit_rich` that is buying Upbit back at its asks against selling Binance at its
    bids; the position profits roughly by entry net premium minus this exit premium.
    """
    upbit, binance = snapshot.upbit[position.symbol], snapshot.binance[position.symbol]
    fee_u, fee_b = fees
    fx = snapshot.krw_per_usdt
    qty = position.qty
    if position.direction == "upbit_rich":
        buy_u, sell_b = walk_depth(upbit, "buy", qty), walk_depth(binance, "sell", qty)
        if buy_u is None or sell_b is None:
            return None
        upbit_usd = buy_u.vwap / fx
        gross = upbit_usd / sell_b.vwap - 1.0
        net = upbit_usd * (1.0 + fee_u) / (sell_b.vwap * (1.0 - fee_b)) - 1.0
        return Quote(
            position.symbol, position.direction, qty, buy_u.vwap, sell_b.vwap, fx, gross * 100, net * 100
        )
    sell_u, buy_b = walk_depth(upbit, "sell", qty), walk_depth(binance, "buy", qty)
    if sell_u is None or buy_b is None:
        return None
    upbit_usd = sell_u.vwap / fx
    gross = buy_b.vwap / upbit_usd - 1.0
    net = buy_b.vwap * (1.0 + fee_b) / (upbit_usd * (1.0 - fee_u)) - 1.0
    return Quote(
        position.symbol, position.direction, qty, sell_u.vwap, buy_b.vwap, fx, gross * 100, net * 100
    )


def order_qty(binance: OrderBook, notional_usd: float) -> float:
    """Base quantity for the configured notional, at the Binance mid, to 8 decimals."""
    return round(notional_usd / binance.mid, 8)


class Strategy:
    """Turns one snapshot and the held positions into entry and exit intents.

    At most one position per symbol. `opportunities_generated` counts every (symbol,
    direction) whose fee-net premium reached the entry threshold, acted on or not.
    """

    def __init__(self, config: StrategyConfig, tick_interval_sec: float) -> None:
        self.config = config
        self.tick_interval_sec = tick_interval_sec
        self.fees = (config.fees_pct.upbit / 100.0, config.fees_pct.binance / 100.0)
        self.opportunities_generated = 0

    def decide(
        self, snapshot: MarketSnapshot, held: dict[str, OpenPosition]
    ) -> tuple[list[ExitIntent], list[EntryIntent]]:
        """Exits for held symbols whose premium has reverted or whose hold ran out; entries elsewhere."""
        cfg = self.config
        exits: list[ExitIntent] = []
        entries: list[EntryIntent] = []
        for symbol in snapshot.symbols():
            position = held.get(symbol)
            if position is not None:
                quote = exit_quote(snapshot, position, self.fees)
                if quote is None:
                    continue
                held_sec = (snapshot.tick - position.entry_tick) * self.tick_interval_sec
                if quote.net_pct <= cfg.exit_threshold_pct:
                    exits.append(ExitIntent(position, quote, "threshold"))
                elif held_sec >= cfg.max_hold_sec:
                    exits.append(ExitIntent(position, quote, "max_hold"))
                continue
            qty = order_qty(snapshot.binance[symbol], cfg.order_notional_usd)
            considered = (
                entry_quote(snapshot, symbol, "upbit_rich", qty, self.fees),
                entry_quote(snapshot, symbol, "binance_rich", qty, self.fees),
            )
            best: Quote | None = None
            for quote in considered:
                if quote is None or quote.net_pct < cfg.entry_threshold_pct:
                    continue
                self.opportunities_generated += 1
                if best is None or quote.net_pct > best.net_pct:
                    best = quote
            if best is not None:
                entries.append(EntryIntent(best, considered))
        return exits, entries
