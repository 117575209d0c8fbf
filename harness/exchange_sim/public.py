"""The simulator's public routes: listings and order books, in each venue's own bodies.

Upbit: `GET /v1/market/all` (`isDetails=true` adds market events) and `GET /v1/orderbook?markets=`
(`count` cuts depth). Binance: `GET /api/v3/ping`, `/api/v3/time`, `/api/v3/exchangeInfo` and
`/api/v3/depth?symbol=&limit=`. A halted market is left out of Upbit's listing and books; Binance
lists it with status BREAK and answers its depth with -1121 "Invalid symbol.".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol

from arbitrage.market.universe import FX_SYMBOL
from harness.exchange_sim import dialects as d
from harness.exchange_sim.control import FaultState

Query = Mapping[str, list[str]]
UPBIT_HEADERS: Final = (("Remaining-Req", "group=default; min=1800; sec=29"),)
BINANCE_DEPTH_HEADERS: Final = (("x-mbx-used-weight-1m", "2"),)


class Market(Protocol):
    """What the public routes read: the symbols served, the listed markets and the faulted books."""

    symbols: tuple[str, ...]

    def now_ms(self) -> int: ...

    def listed(self, venue: str, state: FaultState) -> list[str]: ...

    def books(
        self, venue: str, symbols: Iterable[str], state: FaultState
    ) -> list[tuple[str, d.WireBook | None]]: ...


Route = Callable[[Market, Query, FaultState], d.Reply]


def param(query: Query, name: str) -> str | None:
    """The first value of a query parameter, stripped; None when absent."""
    values = query.get(name)
    return values[0].strip() if values else None


def _upbit_market_all(market: Market, query: Query, state: FaultState) -> d.Reply:
    details = (param(query, "isDetails") or "").lower() == "true"
    listing = d.upbit_market_all(market.listed("upbit", state), details)
    return d.json_reply(200, listing, UPBIT_HEADERS)


def _upbit_orderbook(market: Market, query: Query, state: FaultState) -> d.Reply:
    codes = [c.strip() for c in (param(query, "markets") or "").split(",") if c.strip()]
    if not codes:
        return d.json_reply(400, d.upbit_error(400, d.UPBIT_MISSING_PARAMETER))
    known = {d.upbit_market_code(s): s for s in (FX_SYMBOL, *market.symbols)}
    wanted = [known[c] for c in codes if c in known]
    if not wanted:
        return d.json_reply(404, d.upbit_error(404, "Code not found"))
    count_text = param(query, "count")
    count = int(count_text) if count_text and count_text.isdigit() else None
    books = market.books("upbit", wanted, state)
    return d.json_reply(
        200, [d.upbit_orderbook(s, w, count) for s, w in books if w is not None], UPBIT_HEADERS
    )


def _binance_ping(market: Market, query: Query, state: FaultState) -> d.Reply:
    return d.json_reply(200, {})


def _binance_time(market: Market, query: Query, state: FaultState) -> d.Reply:
    return d.json_reply(200, {"serverTime": market.now_ms()})


def _binance_exchange_info(market: Market, query: Query, state: FaultState) -> d.Reply:
    halted = set(market.symbols) - set(market.listed("binance", state))
    return d.json_reply(200, d.binance_exchange_info(market.symbols, halted, market.now_ms()))


def _binance_depth(market: Market, query: Query, state: FaultState) -> d.Reply:
    symbol_id = param(query, "symbol")
    if not symbol_id:
        msg = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        return d.json_reply(400, d.binance_error(-1102, msg))
    limit_text = param(query, "limit") or "100"
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 5000:
        return d.json_reply(400, d.binance_error(-1100, "Illegal characters found in parameter 'limit'."))
    by_id = {d.binance_symbol(s): (i, s) for i, s in enumerate(market.symbols)}
    if symbol_id not in by_id:
        return d.json_reply(400, d.binance_error(-1121, "Invalid symbol."))
    index, symbol = by_id[symbol_id]
    [(_, wire)] = market.books("binance", [symbol], state)
    if wire is None:
        return d.json_reply(400, d.binance_error(-1121, "Invalid symbol."))
    doc = d.binance_depth(wire, int(limit_text), d.binance_update_id(wire.tick, index))
    return d.json_reply(200, doc, BINANCE_DEPTH_HEADERS)


ROUTES: Final[Mapping[str, Mapping[str, Route]]] = {
    "upbit": {"/v1/market/all": _upbit_market_all, "/v1/orderbook": _upbit_orderbook},
    "binance": {
        "/api/v3/ping": _binance_ping,
        "/api/v3/time": _binance_time,
        "/api/v3/exchangeInfo": _binance_exchange_info,
        "/api/v3/depth": _binance_depth,
    },
}
"""Each venue's public GET routes by path."""


def not_found(venue: str) -> d.Reply:
    """The venue's own 404 for a path it does not serve."""
    if venue == "upbit":
        return d.json_reply(404, d.upbit_error(404, "Not Found"))
    return d.json_reply(404, d.binance_error(-1000, "Not found."))


def answer(market: Market, venue: str, path: str, query: Query, state: FaultState) -> d.Reply:
    """Answer one public GET of `venue`."""
    route = ROUTES[venue].get(path)
    if route is None:
        return not_found(venue)
    return route(market, query, state)


def listed_symbols(venue: str, served: Sequence[str]) -> list[str]:
    """The markets a venue lists before faults: Upbit's KRW-USDT too, Binance only the coins."""
    return [FX_SYMBOL, *served] if venue == "upbit" else list(served)
