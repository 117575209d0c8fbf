"""The account's balances against the ledger: did each asset change by exactly what the run's fills imply?

A live run records both venues' balances before its first order (`LIVE_START`). Since then, each
asset on each venue must have moved by the run's fills as the ledger books them: the coin by the
filled quantity (Upbit's own quantity on Upbit, the Binance quantity on Binance), the quote by the
fill's cost, and the fee on top. The ledger books every fee in the venue's quote currency; the
venue takes it from the asset `FEE_IN_BASE` says, so a Binance buy's fee is taken back out of the
coin at the fill's price. Unwound entry legs and the
filled leg of a failed exit count too (their events carry the fill). Any other change (a foreign
fill, a deposit, a withdrawal, a fee taken in another asset) is a drift.

Tolerances: a coin may differ by two units of the eighth decimal per order that touched it, plus
one (venues round quantities, per-fill commissions and balances there); a quote by
`QUOTE_REL_TOLERANCE` of the run's gross turnover in it (the ledger books each fill's cost and fee
as the venue reported them, so only rounding differs), and never less than the coin's floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

QUOTES: Final = {"upbit": "KRW", "binance": "USDT"}
COIN_STEP: Final = 1e-8
FEE_IN_BASE: Final = frozenset({("binance", "buy")})
"""(venue, side) whose fee the venue takes from the coin bought: Binance charges a buy's commission
in the base asset (unless paid in BNB, which this engine does not use)."""
QUOTE_REL_TOLERANCE: Final = 1e-6


@dataclass
class _Implied:
    """One asset's implied change on one venue: the signed sum, the gross turnover and the fills."""

    change: float = 0.0
    gross: float = 0.0
    fills: int = 0


@dataclass
class Implied:
    """Per venue, per asset: what the ledger's fills imply the balance moved by."""

    assets: dict[str, dict[str, _Implied]] = field(default_factory=dict)

    def add(self, venue: str, coin: str, side: str, qty: float, price: float, fee: float) -> None:
        """Book one fill: + coin and - quote (with the fee) for a buy, the reverse for a sell."""
        sign = 1.0 if side == "buy" else -1.0
        held = self.assets.setdefault(venue, {})
        base, quote = held.setdefault(coin, _Implied()), held.setdefault(QUOTES[venue], _Implied())
        coin_fee = fee / price if (venue, side) in FEE_IN_BASE and price > 0 else 0.0
        quote_fee = 0.0 if coin_fee else fee
        base.change += sign * qty - coin_fee
        base.gross += qty
        base.fills += 1
        quote.change += -sign * qty * price - quote_fee
        quote.gross += qty * price + quote_fee
        quote.fills += 1

    def of(self, venue: str, asset: str) -> _Implied:
        return self.assets.get(venue, {}).get(asset, _Implied())


def implied_changes(legs: Iterable[Mapping[str, Any]], side_orders: Iterable[Mapping[str, Any]]) -> Implied:
    """The balance changes the ledger's trade legs and the events' side fills imply."""
    implied = Implied()
    for leg in legs:
        upbit_qty = float(leg["qty"] if leg.get("upbit_qty") is None else leg["upbit_qty"])
        implied.add("upbit", leg["symbol"], leg["upbit_side"], upbit_qty, leg["upbit_vwap_krw"],
                    leg["upbit_fee_krw"])  # fmt: skip
        implied.add("binance", leg["symbol"], leg["binance_side"], leg["qty"], leg["binance_vwap_usdt"],
                    leg["binance_fee_usdt"])  # fmt: skip
    for fill in side_orders:
        venue = str(fill.get("venue"))
        if venue in QUOTES and fill.get("symbol"):
            qty, price, fee = float(fill["qty"]), float(fill["vwap"]), float(fill.get("fee") or 0.0)
            implied.add(venue, str(fill["symbol"]), str(fill["side"]), qty, price, fee)
    return implied


def _tolerance(asset: str, venue: str, booked: _Implied) -> float:
    floor = COIN_STEP * (2 * booked.fills + 1)
    if asset == QUOTES[venue]:
        return max(floor, QUOTE_REL_TOLERANCE * booked.gross)
    return floor


def compare_balances(
    venue: str, start: Mapping[str, float], now: Mapping[str, float], implied: Implied, problems: list[str]
) -> dict[str, dict[str, Any]]:
    """Each asset's start, now, change, implied change and drift on one venue; drifts go to `problems`."""
    rows: dict[str, dict[str, Any]] = {}
    assets = set(start) | set(now) | set(implied.assets.get(venue, {}))
    for asset in sorted(assets):
        booked = implied.of(venue, asset)
        change = now.get(asset, 0.0) - start.get(asset, 0.0)
        drift = change - booked.change
        tolerance = _tolerance(asset, venue, booked)
        ok = abs(drift) <= tolerance
        rows[asset] = {
            "start": start.get(asset, 0.0), "now": now.get(asset, 0.0), "change": change,
            "implied": booked.change, "drift": drift, "tolerance": tolerance, "ok": ok,
        }  # fmt: skip
        if not ok:
            problems.append(
                f"{venue} {asset}: balance changed {change:+.8f} since the run started, the ledger's fills "
                f"imply {booked.change:+.8f} (drift {drift:+.8f}, tolerance {tolerance:.8f})"
            )
    return rows
