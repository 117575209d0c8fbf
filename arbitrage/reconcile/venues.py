"""What the venues say about the account: balances, open orders and every order since a time.

Read through ccxt with the live keys (the same clients a live run trades with, pointed at
`arbitrage sim` by `exchange_url`). Orders are normalized to `VenueOrder`: quantity, average
price, cost and the fee in the venue's quote currency (a fee taken in the coin is converted at
the order's average price, as the live executor books it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from arbitrage.market.ccxt_source import BINANCE_QUOTE, UPBIT_QUOTE, VenuePair
from arbitrage.ops.live_arm import LiveKeys

QUOTES = {"upbit": UPBIT_QUOTE, "binance": BINANCE_QUOTE}
UPBIT_PAGE = 100


@dataclass(frozen=True)
class VenueOrder:
    """One order as its venue reports it; `fee` is in the venue's quote currency."""

    venue: str
    id: str
    client_id: str | None
    symbol: str
    side: str
    status: str
    qty: float
    avg_price: float
    cost: float
    fee: float
    created_ms: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VenueState:
    """One venue's account: balances (total per asset), open orders and orders since the run began."""

    venue: str
    balances: dict[str, float] = field(default_factory=dict)
    open_orders: list[VenueOrder] = field(default_factory=list)
    orders: list[VenueOrder] = field(default_factory=list)


def _fee(order: Mapping[str, Any], base: str, quote: str, avg: float) -> float:
    fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
    total = 0.0
    for item in fees:
        cost = float(item.get("cost") or 0.0)
        currency = item.get("currency")
        total += cost if currency == quote else cost * avg if currency == base else 0.0
    return total


def normalize(venue: str, order: Mapping[str, Any], fee: float | None = None) -> VenueOrder:
    """A ccxt unified order as a `VenueOrder` (`fee` overrides the order's own fee fields)."""
    base = str(order["symbol"]).split("/")[0]
    filled = float(order.get("filled") or 0.0)
    cost = float(order.get("cost") or 0.0)
    avg = cost / filled if filled > 0 else 0.0
    return VenueOrder(
        venue=venue,
        id=str(order["id"]),
        client_id=order.get("clientOrderId"),
        symbol=base,
        side=str(order["side"]),
        status=str(order.get("status")),
        qty=filled,
        avg_price=avg,
        cost=cost,
        fee=_fee(order, base, QUOTES[venue], avg) if fee is None else fee,
        created_ms=int(order.get("timestamp") or 0),
    )


def _totals(balance: Mapping[str, Any]) -> dict[str, float]:
    totals = balance.get("total") or {}
    return {asset: float(amount) for asset, amount in totals.items() if amount is not None}


async def account_totals(client: Any) -> dict[str, float]:
    """One venue's total balance per asset (free plus locked), as ccxt's `fetch_balance` reports it."""
    return _totals(await client.fetch_balance())


async def _binance(client: Any, symbols: Iterable[str], since_ms: int) -> VenueState:
    state = VenueState("binance")
    client.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
    await client.load_markets()
    state.balances = await account_totals(client)
    state.open_orders = [normalize("binance", o) for o in await client.fetch_open_orders()]
    for symbol in symbols:
        market = f"{symbol}/{BINANCE_QUOTE}"
        if market not in client.markets:
            continue
        fees: dict[str, float] = {}
        trades = await client.fetch_my_trades(market, since_ms)
        orders = await client.fetch_orders(market, since_ms)
        avg = {str(o["id"]): float(o.get("average") or 0.0) for o in orders}
        for trade in trades:
            order_id = str(trade["order"])
            fee = _fee(trade, symbol, BINANCE_QUOTE, avg.get(order_id, 0.0))
            fees[order_id] = fees.get(order_id, 0.0) + fee
        state.orders += [
            normalize("binance", o, fees.get(str(o["id"]), 0.0)) for o in orders if o.get("status") != "open"
        ]
    return state


async def _upbit(client: Any, since_ms: int) -> VenueState:
    state = VenueState("upbit")
    await client.load_markets()
    state.balances = await account_totals(client)
    state.open_orders = [normalize("upbit", o) for o in await client.fetch_open_orders()]
    closed = await client.fetch_closed_orders(None, since_ms, UPBIT_PAGE)
    for order in closed:
        if order.get("cost") is None:
            order = await client.fetch_order(order["id"])
        state.orders.append(normalize("upbit", order))
    return state


def fetch_venues(
    keys: LiveKeys, exchange_url: str | None, symbols: Iterable[str], since_ms: int, timeout_sec: float
) -> dict[str, VenueState]:
    """Both venues' accounts; ccxt errors propagate (the caller makes them one line)."""
    credentials = {
        "upbit": (keys.upbit_access_key.get_secret_value(), keys.upbit_secret_key.get_secret_value()),
        "binance": (keys.binance_api_key.get_secret_value(), keys.binance_api_secret.get_secret_value()),
    }
    pair = VenuePair(timeout_sec, exchange_url, credentials)
    try:
        binance = pair.run(_binance(pair.binance, sorted(set(symbols)), since_ms))
        upbit = pair.run(_upbit(pair.upbit, since_ms))
    finally:
        pair.close()
    return {"upbit": upbit, "binance": binance}
