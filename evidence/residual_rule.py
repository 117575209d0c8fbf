"""The hedge residual: what a trade leaves unhedged, and the bound a run's total is held to.

An entry buys on one venue and sells the same quantity on the other, except that an Upbit market
buy is placed by its KRW cost (Upbit's `ord_type=price`): the coin it gets follows the price it
filled at, so it differs from the Binance quantity (about 1 % when the fill is 1 % off the quote).
Upbit quantity minus Binance quantity is the residual, in coin, and in USD at the Binance fill
price (USDT counted as USD, as the PnL is). A trade reports it twice: after its entry (held until
the exit, when the entry bought on Upbit) and after its exit (the remainder the round trip leaves
on Upbit, when the exit bought back what the entry sold there).

A run's total absolute residual is the sum of those |residual USD| over its trades. It is held to a
bound proportional to what the run traded: `max_pct_of_notional` percent of the entries' Binance
notional. The engine writes the figures and the configured bound into `kpi.json["residual"]`;
this module is the one place both the KPI and the verify criterion read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from evidence.criteria import HIGH, Judged
from evidence.run_facts import RunFacts, number_at

NAME: Final = "hedge_residual"


def leg_residual(upbit_qty: float, binance_qty: float, binance_price: float) -> tuple[float, float]:
    """(coin, USD) residual: Upbit quantity minus Binance quantity, valued at Binance's fill price."""
    qty = upbit_qty - binance_qty
    return qty, qty * binance_price


def residual_bound_usd(doc: Mapping[str, Any]) -> float | None:
    """The bound in USD from a `kpi.json["residual"]` block: the configured share of entry notional."""
    pct, notional = number_at(doc, "max_pct_of_notional"), number_at(doc, "entry_notional_usd")
    if pct is None or notional is None:
        return None
    return pct / 100.0 * notional


def total_abs_residual_usd(facts: RunFacts) -> float | None:
    """The run's total |residual| in USD; None for a run older than the residual figures."""
    return facts.number("residual", "total_abs_usd")


def hedge_residual(facts: RunFacts) -> Judged:
    """The run's total absolute hedge residual (USD) within its configured share of entry notional."""
    block = facts.kpi.get("residual")
    total = total_abs_residual_usd(facts)
    bound = residual_bound_usd(block) if isinstance(block, Mapping) else None
    if total is None or bound is None:
        return Judged(NAME, HIGH, "fail", total, bound, "cannot check: kpi.json residual unavailable")
    assert isinstance(block, Mapping)
    pct = number_at(block, "max_pct_of_notional")
    trades = int(number_at(block, "trades") or 0)
    detail = (
        f"total |Upbit qty - Binance qty| {total:.4f} USD over {trades} trades; bound {pct:g}% of"
        f" {number_at(block, 'entry_notional_usd') or 0.0:.2f} USD entry notional = {bound:.4f} USD"
    )
    ok = total <= bound
    return Judged(NAME, HIGH, "pass" if ok else "fail", round(total, 6), round(bound, 6), detail)
