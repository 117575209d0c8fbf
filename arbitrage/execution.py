"""Paper execution: fills that a live venue would also give, or a recorded refusal.

Every fill walks the real depth of the book it trades against (the strategy's quote already
did the walk for the order size), pays the venue's taker fee, and respects the venue's
minimum order. Entries place the Binance leg first and the Upbit leg second; when the second
leg is refused, the first is unwound at once on its own venue and the unwind is reported, so
no one-legged position is ever left open (hummingbot #2929).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from arbitrage.config import StrategyConfig
from arbitrage.market.book import MarketSnapshot, Side, walk_depth
from arbitrage.strategy import EntryIntent, ExitIntent, Quote


@dataclass(frozen=True, slots=True)
class LegFill:
    """One venue's side of a trade. `fee` is in the venue's quote currency; `order_id` is the
    venue's id for a live order (None on paper)."""

    venue: str
    side: Side
    qty: float
    vwap: float
    notional: float
    fee: float
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class PairFill:
    """Both legs of an entry or an exit, filled."""

    quote: Quote
    upbit: LegFill
    binance: LegFill


@dataclass(frozen=True, slots=True)
class LegFailure:
    """The second leg was refused; the first was filled and then unwound."""

    quote: Quote
    filled: LegFill
    unwind: LegFill | None
    failed_venue: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """Nothing was filled: the order broke a venue rule before any leg was placed, or (live) the
    venue refused it, the kill switch blocked it, its outcome is unknown, or the run is stopping
    (`kind`)."""

    quote: Quote
    reason: str
    kind: str = "below_minimum"


def _opposite(side: Side) -> Side:
    return "sell" if side == "buy" else "buy"


class PaperExecutor:
    """Fills intents against the snapshot's books without touching any venue."""

    def __init__(self, config: StrategyConfig, seed: int) -> None:
        self.config = config
        self.fee_upbit = config.fees_pct.upbit / 100.0
        self.fee_binance = config.fees_pct.binance / 100.0
        self._refusals = random.Random(seed ^ 0x5EED)

    @property
    def venue_wait_ms(self) -> float:
        """Always 0: a paper fill waits on no venue."""
        return 0.0

    def _legs(self, quote: Quote, opening: bool) -> tuple[LegFill, LegFill]:
        upbit_sells = (quote.direction == "upbit_rich") == opening
        upbit_side: Side = "sell" if upbit_sells else "buy"
        binance_side = _opposite(upbit_side)
        qty = quote.qty
        upbit_notional = qty * quote.upbit_vwap_krw
        binance_notional = qty * quote.binance_vwap_usdt
        upbit = LegFill(
            "upbit", upbit_side, qty, quote.upbit_vwap_krw, upbit_notional, upbit_notional * self.fee_upbit
        )
        binance = LegFill(
            "binance",
            binance_side,
            qty,
            quote.binance_vwap_usdt,
            binance_notional,
            binance_notional * self.fee_binance,
        )
        return upbit, binance

    def _below_minimum(self, upbit: LegFill, binance: LegFill) -> str | None:
        minimums = self.config.min_order
        if upbit.notional < minimums.upbit_krw:
            return f"upbit notional {upbit.notional:.0f} KRW < minimum {minimums.upbit_krw:.0f} KRW"
        if binance.notional < minimums.binance_usdt:
            return f"binance notional {binance.notional:.2f} USDT < minimum {minimums.binance_usdt:.2f} USDT"
        return None

    def enter(self, intent: EntryIntent, snapshot: MarketSnapshot) -> PairFill | LegFailure | Rejected:
        """Open both legs, or unwind the first when the second is refused."""
        quote = intent.quote
        upbit, binance = self._legs(quote, opening=True)
        too_small = self._below_minimum(upbit, binance)
        if too_small is not None:
            return Rejected(quote, too_small)
        if self._refusals.random() < self.config.paper_leg_fail_rate:
            unwind_side = _opposite(binance.side)
            walked = walk_depth(snapshot.binance[quote.symbol], unwind_side, binance.qty)
            unwind = None
            if walked is not None:
                unwind = LegFill(
                    "binance",
                    unwind_side,
                    walked.qty,
                    walked.vwap,
                    walked.notional,
                    walked.notional * self.fee_binance,
                )
            return LegFailure(quote, binance, unwind, "upbit", "upbit leg refused (paper_leg_fail_rate)")
        return PairFill(quote, upbit, binance)

    def exit(self, intent: ExitIntent) -> PairFill:
        """Close both legs at the exit quote's walked prices."""
        upbit, binance = self._legs(intent.quote, opening=False)
        return PairFill(intent.quote, upbit, binance)
