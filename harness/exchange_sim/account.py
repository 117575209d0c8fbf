"""The simulator's account views: balances, open and past orders, fills, lookup by client order id.

Reconciliation (`arbitrage reconcile`) asks the venues what they hold and what they filled, and a
live run resolves an order whose outcome it could not see (a timeout) by its client order id. The
simulator answers those questions from the orders it kept, in each venue's own bodies:

Binance `GET /api/v3/account`, `/api/v3/order` (by `orderId` or `origClientOrderId`),
`/api/v3/openOrders`, `/api/v3/allOrders`, `/api/v3/myTrades` (of a symbol, or of one `orderId`);
Upbit `GET /v1/accounts`, `/v1/order` (by `uuid` or `identifier`), `/v1/orders/open`,
`/v1/orders/closed`.

Balances start from `INITIAL_BALANCES` (every coin at `INITIAL_COIN_UNITS`) and move with every
fill and its fee; resting limit orders lock nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from arbitrage.market.universe import UNIVERSE
from harness.exchange_sim import dialects as d

EIGHT: Final = Decimal("0.00000001")
INITIAL_COIN_UNITS: Final = Decimal(1000)
INITIAL_BALANCES: Final[Mapping[str, Mapping[str, Decimal]]] = {
    "binance": {"USDT": Decimal(1_000_000)},
    "upbit": {"KRW": Decimal(10_000_000_000)},
}
QUOTE: Final = {"binance": "USDT", "upbit": "KRW"}
TRADE_ID_SPAN: Final = 1000
"""A fill's trade id is its order id times this span plus its index: stable across lookups."""


@dataclass(frozen=True, slots=True)
class SimOrder:
    """An order the simulator accepted; `fee` is in the venue's quote currency.

    A market order is filled when accepted (`fills` may be partial); a limit order rests open
    (`open`, no fills, `limit_price` set) until something cancels it.
    """

    venue: str
    symbol: str
    side: str
    qty: Decimal
    cost: Decimal
    fee: Decimal
    id: str
    fills: tuple[tuple[Decimal, Decimal], ...]
    request: dict[str, str]
    created_ms: int
    client_id: str = ""
    open: bool = False
    limit_price: Decimal | None = None
    orig_qty: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        """The control API's view of the order."""
        avg = self.cost / self.qty if self.qty else Decimal(0)
        return {
            "venue": self.venue,
            "symbol": self.symbol,
            "side": self.side,
            "qty": float(self.qty),
            "avg_price": float(avg),
            "cost": float(self.cost),
            "fee": float(self.fee),
            "id": self.id,
            "client_id": self.client_id,
            "open": self.open,
        }


def dec8(value: Decimal) -> str:
    """Eight decimals, as Binance writes every quantity and price."""
    return f"{value.quantize(EIGHT):f}"


def balances(venue: str, orders: Iterable[SimOrder]) -> dict[str, Decimal]:
    """The venue's balances after every fill of `orders` (fees included)."""
    held: dict[str, Decimal] = {**INITIAL_BALANCES[venue]}
    for symbol in UNIVERSE:
        held.setdefault(symbol, INITIAL_COIN_UNITS)
    quote = QUOTE[venue]
    for order in orders:
        if order.venue != venue or not order.qty:
            continue
        sign = 1 if order.side == "buy" else -1
        base_fee = venue == "binance" and order.side == "buy"
        coin_fee = order.qty * Decimal("0.001") if base_fee else Decimal(0)
        held[order.symbol] = held.get(order.symbol, INITIAL_COIN_UNITS) + sign * order.qty - coin_fee
        quote_fee = Decimal(0) if base_fee else order.fee
        held[quote] -= sign * order.cost + quote_fee
    return held


def _find(orders: Iterable[SimOrder], order_id: str | None, client_id: str | None) -> SimOrder | None:
    """The order with the venue's id, or else with the client order id."""
    for order in orders:
        if (order_id and order.id == order_id) or (client_id and order.client_id == client_id):
            return order
    return None


# -- Binance ---------------------------------------------------------------------------------
def binance_order_doc(order: SimOrder) -> dict[str, Any]:
    """Binance's order body (GET /api/v3/order, allOrders, openOrders)."""
    orig = order.orig_qty if order.orig_qty is not None else order.qty
    status = "NEW" if order.open else "FILLED" if order.qty == orig else "EXPIRED"
    return {
        "symbol": d.binance_symbol(order.symbol), "orderId": int(order.id), "orderListId": -1,
        "clientOrderId": order.client_id, "price": dec8(order.limit_price or Decimal(0)),
        "origQty": dec8(orig), "executedQty": dec8(order.qty), "cummulativeQuoteQty": dec8(order.cost),
        "status": status, "timeInForce": "GTC", "type": "LIMIT" if order.limit_price else "MARKET",
        "side": order.side.upper(), "stopPrice": "0.00000000", "icebergQty": "0.00000000",
        "time": order.created_ms, "updateTime": order.created_ms, "isWorking": True,
        "workingTime": order.created_ms, "origQuoteOrderQty": "0.00000000",
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }  # fmt: skip


def binance_fill_docs(order: SimOrder, fee_rate: Decimal) -> list[dict[str, Any]]:
    """The order's fills as Binance's FULL order response lists them (commission per fill)."""
    base_fee = order.side == "buy"
    return [
        {"price": dec8(p), "qty": dec8(q), "commission": dec8((q if base_fee else p * q) * fee_rate),
         "commissionAsset": order.symbol if base_fee else "USDT",
         "tradeId": int(order.id) * TRADE_ID_SPAN + k}
        for k, (p, q) in enumerate(order.fills)
    ]  # fmt: skip


def _binance_trades(order: SimOrder, fee_rate: Decimal) -> list[dict[str, Any]]:
    docs = []
    for fill, (price, qty) in zip(binance_fill_docs(order, fee_rate), order.fills, strict=True):
        docs.append(
            {"symbol": d.binance_symbol(order.symbol), "id": fill["tradeId"], "orderId": int(order.id),
             "orderListId": -1, "price": fill["price"], "qty": fill["qty"], "quoteQty": dec8(price * qty),
             "commission": fill["commission"], "commissionAsset": fill["commissionAsset"],
             "time": order.created_ms, "isBuyer": order.side == "buy", "isMaker": False, "isBestMatch": True}
        )  # fmt: skip
    return docs


def binance_read(
    path: str, params: Mapping[str, str], orders: Sequence[SimOrder], fee_rate: Decimal, now_ms: int
) -> d.Reply:
    """Answer one signed Binance read (`params` already verified)."""
    mine = [o for o in orders if o.venue == "binance"]
    if path == "/api/v3/account":
        held = balances("binance", mine)
        return d.json_reply(200, {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms,
            "accountType": "SPOT", "permissions": ["SPOT"],
            "balances": [
                {"asset": a, "free": dec8(v), "locked": "0.00000000"} for a, v in sorted(held.items())
            ],
        })  # fmt: skip
    by_symbol = {d.binance_symbol(s): s for s in UNIVERSE}
    wanted = params.get("symbol")
    if wanted is not None and wanted not in by_symbol:
        return d.json_reply(400, d.binance_error(-1121, "Invalid symbol."))
    scoped = [o for o in mine if wanted is None or d.binance_symbol(o.symbol) == wanted]
    if path == "/api/v3/openOrders":
        return d.json_reply(200, [binance_order_doc(o) for o in scoped if o.open])
    if wanted is None:
        msg = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        return d.json_reply(400, d.binance_error(-1102, msg))
    since = int(params.get("startTime") or 0)
    scoped = [o for o in scoped if o.created_ms >= since]
    if path == "/api/v3/allOrders":
        return d.json_reply(200, [binance_order_doc(o) for o in scoped])
    if path == "/api/v3/myTrades":
        wanted_order = params.get("orderId")
        traded = [o for o in scoped if wanted_order is None or o.id == wanted_order]
        return d.json_reply(200, [t for o in traded for t in _binance_trades(o, fee_rate)])
    if path == "/api/v3/order":
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        found = _find(scoped, order_id, client_id)
        if found is None:
            return d.json_reply(400, d.binance_error(-2013, "Order does not exist."))
        return d.json_reply(200, binance_order_doc(found))
    return d.json_reply(404, d.binance_error(-1000, "Not found."))


# -- Upbit -----------------------------------------------------------------------------------
def upbit_read(
    path: str,
    params: Mapping[str, str],
    orders: Sequence[SimOrder],
    order_doc: Callable[[SimOrder, bool], dict[str, Any]],
) -> d.Reply:
    """Answer one signed Upbit read (JWT and query hash already verified)."""
    mine = [o for o in orders if o.venue == "upbit"]
    if path == "/v1/accounts":
        held = balances("upbit", mine)
        return d.json_reply(200, [
            {"currency": a, "balance": dec8(v), "locked": "0", "avg_buy_price": "0",
             "avg_buy_price_modified": False, "unit_currency": "KRW"}
            for a, v in sorted(held.items())
        ])  # fmt: skip
    if path == "/v1/order":
        order_id, identifier = params.get("uuid"), params.get("identifier")
        found = _find(mine, order_id, identifier)
        if found is None:
            return d.json_reply(404, d.upbit_error("order_not_found", "주문을 찾지 못했습니다."))
        return d.json_reply(200, order_doc(found, not found.open))
    market = params.get("market")
    scoped = [o for o in mine if market is None or d.upbit_market_code(o.symbol) == market]
    if path == "/v1/orders/open":
        return d.json_reply(200, [order_doc(o, False) for o in scoped if o.open])
    if path == "/v1/orders/closed":
        since, until = int(params.get("start_time") or 0), int(params.get("end_time") or 2**62)
        done = [o for o in scoped if not o.open and since <= o.created_ms <= until]
        done.sort(key=lambda o: o.created_ms, reverse=True)
        limit = int(params.get("limit") or 100)
        return d.json_reply(200, [order_doc(o, True) for o in done[:limit]])
    return d.json_reply(404, d.upbit_error(404, "Not Found"))
