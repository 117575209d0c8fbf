"""Order placement on the simulated venues: market orders filled against the model's book, limits rest.

Routes: Binance `POST /api/v3/order` (MARKET fills at once, FULL response with fills; LIMIT rests
open); Upbit `POST /v1/orders` (`ord_type` "price" buys for a KRW amount, "market" sells a volume,
both answered in state "wait" like the venue; "limit" rests open). Each placement checks the
venue's own rules (lot size, minimum notional or total) and answers a refusal with the venue's
body; an accepted order is returned with its answer for the caller to keep.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from arbitrage.market.book import OrderBook
from arbitrage.market.universe import FX_SYMBOL, UNIVERSE
from harness.exchange_sim import account as acct
from harness.exchange_sim import dialects as d
from harness.exchange_sim.account import SimOrder

BINANCE_FEE = Decimal("0.001")
UPBIT_FEE = Decimal("0.0005")
UPBIT_MIN_TOTAL_KRW = Decimal(5000)
BINANCE_MIN_NOTIONAL = Decimal(5)
KST = timezone(timedelta(hours=9))
EIGHT = Decimal("0.00000001")

BookOf = Callable[[str, str], OrderBook | None]
"""(venue, base symbol) -> the current unfaulted book, or None for an unknown market."""


@dataclass(frozen=True, slots=True)
class Placement:
    """The answer to an order request, and the order when the venue accepted it."""

    reply: d.Reply
    order: SimOrder | None = None


def _dec(value: Decimal) -> str:
    return format(value.quantize(EIGHT).normalize(), "f")


def walk(
    levels: Iterable[tuple[float, float]], qty: Decimal | None, cost: Decimal | None
) -> list[tuple[Decimal, Decimal]]:
    """Consume levels for a base `qty` or a quote `cost`; [(price, qty)] per level touched."""
    fills: list[tuple[Decimal, Decimal]] = []
    for price_f, size_f in levels:
        price, size = Decimal(repr(price_f)), Decimal(repr(size_f))
        if qty is not None:
            take = min(size, qty)
            qty -= take
        else:
            assert cost is not None
            take = min(size, (cost / price).quantize(EIGHT, rounding="ROUND_DOWN"))
            cost -= take * price
        if take > 0:
            fills.append((price, take))
        if (qty is not None and qty <= 0) or (cost is not None and cost < price * EIGHT):
            break
    return fills


def slipped(book: OrderBook, bps: float) -> OrderBook:
    """The book a market order fills against when prices moved `bps` basis points against the taker
    between the quote and the fill: asks up, bids down, sizes kept."""
    up, down = 1.0 + bps / 10_000.0, 1.0 - bps / 10_000.0
    return replace(
        book, asks=tuple((p * up, q) for p, q in book.asks), bids=tuple((p * down, q) for p, q in book.bids)
    )


def _binance_refusal(status: int, code: int, msg: str) -> Placement:
    return Placement(d.json_reply(status, d.binance_error(code, msg)))


def _binance_terms(
    params: Mapping[str, str], book_of: BookOf
) -> tuple[str, OrderBook, str, Decimal, Decimal | None] | Placement:
    """(symbol, book, side, quantity, limit price or None) of a well-formed order, else the refusal."""
    by_id = {d.binance_symbol(s): s for s in UNIVERSE}
    symbol = by_id.get(params.get("symbol", ""))
    book = None if symbol is None else book_of("binance", symbol)
    if symbol is None or book is None:
        return _binance_refusal(400, -1121, "Invalid symbol.")
    side, kind = params.get("side", ""), params.get("type")
    if side not in ("BUY", "SELL"):
        return _binance_refusal(400, -1100, "Illegal characters found in parameter 'side'.")
    if kind not in ("MARKET", "LIMIT"):
        return _binance_refusal(400, -1116, "Invalid orderType.")
    try:
        qty = Decimal(params.get("quantity", ""))
        limit = Decimal(params["price"]) if kind == "LIMIT" else None
    except (InvalidOperation, KeyError):
        return _binance_refusal(400, -1100, "Illegal characters found in parameter 'quantity'.")
    step = Decimal(repr(UNIVERSE[symbol].binance_step))
    if qty <= 0 or qty % step != 0:
        return _binance_refusal(400, -1013, "Filter failure: LOT_SIZE")
    return symbol, book, side, qty, limit


def binance_order(
    params: Mapping[str, str], book_of: BookOf, refuse: bool, next_id: Callable[[], str], now_ms: int
) -> Placement:
    """`POST /api/v3/order` with verified `params`; `refuse` answers "insufficient balance"."""
    terms = _binance_terms(params, book_of)
    if isinstance(terms, Placement):
        return terms
    symbol, book, side, qty, limit = terms
    if refuse:
        return _binance_refusal(400, -2010, "Account has insufficient balance for requested action.")
    fills = [] if limit is not None else walk(book.asks if side == "BUY" else book.bids, qty, None)
    executed = sum((q for _, q in fills), Decimal(0))
    cost = sum((p * q for p, q in fills), Decimal(0))
    if (cost if limit is None else qty * limit) < BINANCE_MIN_NOTIONAL:
        return _binance_refusal(400, -1013, "Filter failure: NOTIONAL")
    order = SimOrder(
        "binance", symbol, side.lower(), executed, cost, cost * BINANCE_FEE, next_id(),
        tuple(fills), dict(params), now_ms, params.get("newClientOrderId") or uuid.uuid4().hex[:22],
        open=limit is not None, limit_price=limit, orig_qty=qty,
    )  # fmt: skip
    doc = acct.binance_order_doc(order)
    doc.update({"transactTime": now_ms, "fills": acct.binance_fill_docs(order, BINANCE_FEE)})
    return Placement(d.json_reply(200, doc), order)


def _upbit_refusal(status: int, name: str | int, message: str) -> Placement:
    return Placement(d.json_reply(status, d.upbit_error(name, message)))


def _upbit_fills(
    params: Mapping[str, str], book: OrderBook
) -> tuple[list[tuple[Decimal, Decimal]], Decimal, str] | Placement:
    """(fills, the order's total in KRW, the error name if under the minimum), else a refusal."""
    side, ord_type = params.get("side"), params.get("ord_type")
    try:
        if side == "bid" and ord_type == "price" and "volume" not in params:
            spend = Decimal(params["price"])
            return walk(book.asks, None, spend), spend, "under_min_total_bid"
        if side in ("bid", "ask") and ord_type == "limit":
            total = Decimal(params["price"]) * Decimal(params["volume"])
            return [], total, f"under_min_total_{side}"
        if side == "ask" and ord_type == "market" and "price" not in params:
            volume = Decimal(params["volume"])
            return walk(book.bids, volume, None), volume * Decimal(repr(book.best_bid)), "under_min_total_ask"
    except (KeyError, InvalidOperation):
        return _upbit_refusal(400, 400, d.UPBIT_MISSING_PARAMETER)
    return _upbit_refusal(400, "validation_error", "side, ord_type, price or volume invalid")


def upbit_order(params: Mapping[str, str], book_of: BookOf, refuse: bool, now_ms: int) -> Placement:
    """`POST /v1/orders` with verified `params`; `refuse` answers "insufficient funds"."""
    known = {d.upbit_market_code(s): s for s in (FX_SYMBOL, *UNIVERSE)}
    symbol = known.get(params.get("market", ""))
    book = None if symbol is None else book_of("upbit", symbol)
    if symbol is None or book is None:
        return _upbit_refusal(404, "market_does_not_exist", "마켓 정보가 없습니다.")
    priced = _upbit_fills(params, book)
    if isinstance(priced, Placement):
        return priced
    fills, total, error = priced
    side = params.get("side")
    if total < UPBIT_MIN_TOTAL_KRW:
        return _upbit_refusal(400, error, "최소주문금액 이상으로 주문해주세요")
    if refuse:
        asset = "KRW" if side == "bid" else symbol
        return _upbit_refusal(400, f"insufficient_funds_{side}", f"주문가능한 금액({asset})이 부족합니다.")
    executed = sum((q for _, q in fills), Decimal(0))
    cost = sum((p * q for p, q in fills), Decimal(0))
    resting = params.get("ord_type") == "limit"
    order = SimOrder(
        "upbit", symbol, "buy" if side == "bid" else "sell", executed, cost, cost * UPBIT_FEE,
        str(uuid.uuid4()), tuple(fills), dict(params), now_ms, params.get("identifier", ""),
        open=resting, limit_price=Decimal(params["price"]) if resting else None,
        orig_qty=Decimal(params["volume"]) if "volume" in params else None,
    )  # fmt: skip
    return Placement(d.json_reply(201, upbit_order_doc(order, done=False)), order)


def _kst(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).astimezone(KST).isoformat(timespec="seconds")


def upbit_order_doc(order: SimOrder, done: bool) -> dict[str, Any]:
    """Upbit's order: as accepted ("wait", nothing executed yet) or looked up ("done", with trades)."""
    buy = order.side == "buy"
    req = order.request
    limit = order.limit_price is not None
    doc: dict[str, Any] = {
        "uuid": order.id, "side": "bid" if buy else "ask", "ord_type": req.get("ord_type"),
        "price": req.get("price") if buy or limit else None, "state": "done" if done else "wait",
        "market": d.upbit_market_code(order.symbol), "created_at": _kst(order.created_ms),
        "volume": None if buy and not limit else req.get("volume"),
        "remaining_volume": "0" if done or (buy and not limit) else req.get("volume"),
        "executed_funds": _dec(order.cost) if done else "0",
        "reserved_fee": _dec(order.fee), "remaining_fee": "0" if done else _dec(order.fee),
        "paid_fee": _dec(order.fee) if done else "0", "locked": "0" if done else _dec(order.cost + order.fee),
        "executed_volume": _dec(order.qty) if done else "0", "prevented_volume": "0", "prevented_locked": "0",
        "trades_count": len(order.fills) if done else 0,
    }  # fmt: skip
    if "identifier" in req:
        doc["identifier"] = req["identifier"]
    if done:
        doc["trades"] = [
            {"market": doc["market"], "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{order.id}/{k}")),
             "price": _dec(p), "volume": _dec(q), "funds": _dec(p * q), "trend": "up" if buy else "down",
             "created_at": doc["created_at"], "side": doc["side"]}
            for k, (p, q) in enumerate(order.fills)
        ]  # fmt: skip
    return doc
