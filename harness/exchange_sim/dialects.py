"""Upbit and Binance REST response bodies, built from the engine's own order books.

The local exchange simulator answers in these shapes so that ccxt's unmodified `upbit` and
`binance` classes parse them exactly as they parse the real venues. Field names and JSON types
follow the venues' documented responses and ccxt's parsers: Upbit sends numbers, Binance sends
decimal strings. Book faults are applied here too, on the wire representation, so a corrupted
book reaches ccxt the way a corrupted venue answer would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from arbitrage.market.book import Level, OrderBook
from arbitrage.market.universe import FX_SYMBOL, UNIVERSE

ERROR_FAULTS = ("ban", "rate_limit", "server_error", "bad_json")
"""Faults answered with an error instead of data, in order of precedence ("timeout" never answers)."""
BAN_SECONDS = 60
"""The Retry-After (and the ban length named in 418 bodies) unless the simulator is told otherwise."""
MAX_RETRY_AFTER_SEC = 86_400.0
JSON_TYPE = "application/json;charset=UTF-8"

BOOK_FAULTS = ("stale", "halted", "empty", "crossed", "negative", "nan")
"""Faults that change individual books, in the order they are applied."""

BINANCE_UPDATE_ID_BASE = 70_000_000_000
"""Binance `lastUpdateId` values are large sequence numbers; the simulator's start near real ones."""

ORDER_TYPES = (
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)

UPBIT_NAMES: dict[str, tuple[str, str]] = {
    "BTC": ("비트코인", "Bitcoin"),
    "ETH": ("이더리움", "Ethereum"),
    "XRP": ("엑스알피(리플)", "XRP"),
    "SOL": ("솔라나", "Solana"),
    "DOGE": ("도지코인", "Dogecoin"),
    "SUI": ("수이", "Sui"),
    "ADA": ("에이다", "Cardano"),
    "LINK": ("체인링크", "Chainlink"),
    "TRX": ("트론", "TRON"),
    "AVAX": ("아발란체", "Avalanche"),
    "HBAR": ("헤데라", "Hedera"),
    "XLM": ("스텔라루멘", "Stellar Lumens"),
    "BCH": ("비트코인캐시", "Bitcoin Cash"),
    "NEAR": ("니어프로토콜", "NEAR Protocol"),
    "ETC": ("이더리움클래식", "Ethereum Classic"),
    "SHIB": ("시바이누", "Shiba Inu"),
    "APT": ("앱토스", "Aptos"),
    "ARB": ("아비트럼", "Arbitrum"),
    "DOT": ("폴카닷", "Polkadot"),
    "SAND": ("샌드박스", "The Sandbox"),
    "PEPE": ("페페", "Pepe"),
    "ONDO": ("온도파이낸스", "Ondo Finance"),
    "ENA": ("에테나", "Ethena"),
    "SEI": ("세이", "Sei"),
    "AAVE": ("에이브", "Aave"),
    "UNI": ("유니스왑", "Uniswap"),
    "ATOM": ("코스모스", "Cosmos"),
    "ALGO": ("알고랜드", "Algorand"),
    "FIL": ("파일코인", "Filecoin"),
    "STX": ("스택스", "Stacks"),
    "IMX": ("이뮤터블엑스", "Immutable X"),
    "GRT": ("더그래프", "The Graph"),
    "MANA": ("디센트럴랜드", "Decentraland"),
    "AXS": ("엑시인피니티", "Axie Infinity"),
    "THETA": ("쎄타토큰", "Theta Token"),
    "VET": ("비체인", "VeChain"),
    "CHZ": ("칠리즈", "Chiliz"),
    "ENS": ("이더리움네임서비스", "Ethereum Name Service"),
    "POL": ("폴리곤 에코시스템 토큰", "POL (ex-MATIC)"),
    "BONK": ("봉크", "Bonk"),
    "QTUM": ("퀀텀", "Qtum"),
    "NEO": ("네오", "NEO"),
    "ZIL": ("질리카", "Zilliqa"),
    "BAT": ("베이직어텐션토큰", "Basic Attention Token"),
    "STORJ": ("스토리지", "Storj"),
    "XTZ": ("테조스", "Tezos"),
    "EGLD": ("멀티버스엑스", "MultiversX"),
    "KAVA": ("카바", "Kava"),
    "FLOW": ("플로우", "Flow"),
    "MASK": ("마스크네트워크", "Mask Network"),
    FX_SYMBOL: ("테더", "Tether"),
}


@dataclass(frozen=True, slots=True)
class WireBook:
    """A book as it goes on the wire: levels best first, possibly corrupted by a fault."""

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    timestamp_ms: int
    tick: int


def apply_book_faults(book: OrderBook, tick: int, faults: Iterable[str]) -> WireBook | None:
    """The wire form of `book` under the active book faults; None when the market is halted.

    "stale" is not handled here: the caller substitutes the frozen book before calling.
    """
    active = set(faults)
    if "halted" in active:
        return None
    bids, asks = book.bids, book.asks
    if "empty" in active:
        bids, asks = (), ()
    if "crossed" in active:
        bids, asks = asks, bids
    if "negative" in active:
        bids = tuple((-p, s) for p, s in bids)
        asks = tuple((-p, s) for p, s in asks)
    if "nan" in active:
        bids = tuple((math.nan, s) for _, s in bids)
        asks = tuple((math.nan, s) for _, s in asks)
    return WireBook(bids, asks, book.timestamp_ms, tick)


def _upbit_number(value: float) -> float | str:
    """JSON has no NaN: a non-finite value goes out as the string "NaN", which ccxt still parses."""
    return value if math.isfinite(value) else "NaN"


def _binance_decimal(value: float) -> str:
    return f"{value:.8f}" if math.isfinite(value) else "NaN"


def upbit_market_code(symbol: str) -> str:
    """Upbit's market code for a base symbol: quote first, `KRW-BTC`."""
    return f"KRW-{symbol}"


def upbit_market_all(symbols: Iterable[str], details: bool) -> list[dict[str, Any]]:
    """`GET /v1/market/all`: one entry per listed KRW market (`isDetails=true` adds market_event)."""
    out: list[dict[str, Any]] = []
    for symbol in symbols:
        korean, english = UPBIT_NAMES.get(symbol, (symbol, symbol))
        entry: dict[str, Any] = {
            "market": upbit_market_code(symbol),
            "korean_name": korean,
            "english_name": english,
        }
        if details:
            entry["market_event"] = {
                "warning": False,
                "caution": {
                    "PRICE_FLUCTUATIONS": False,
                    "TRADING_VOLUME_SOARING": False,
                    "DEPOSIT_AMOUNT_SOARING": False,
                    "GLOBAL_PRICE_DIFFERENCES": False,
                    "CONCENTRATION_OF_SMALL_ACCOUNTS": False,
                },
            }
        out.append(entry)
    return out


def upbit_orderbook(symbol: str, wire: WireBook, count: int | None) -> dict[str, Any]:
    """One element of `GET /v1/orderbook`: paired ask/bid units, best first, with totals."""
    depth = min(len(wire.bids), len(wire.asks))
    if count is not None:
        depth = min(depth, count)
    units = [
        {
            "ask_price": _upbit_number(wire.asks[k][0]),
            "bid_price": _upbit_number(wire.bids[k][0]),
            "ask_size": _upbit_number(wire.asks[k][1]),
            "bid_size": _upbit_number(wire.bids[k][1]),
        }
        for k in range(depth)
    ]
    return {
        "market": upbit_market_code(symbol),
        "timestamp": wire.timestamp_ms,
        "total_ask_size": round(sum(s for _, s in wire.asks[:depth]), 8),
        "total_bid_size": round(sum(s for _, s in wire.bids[:depth]), 8),
        "orderbook_units": units,
        "level": 0,
    }


UPBIT_MISSING_PARAMETER = "Missing request parameter error. Check the required parameters!"


def upbit_error(name: str | int, message: str) -> dict[str, Any]:
    """Upbit's error body: `{"error": {"name": ..., "message": ...}}`."""
    return {"error": {"name": name, "message": message}}


def binance_symbol(symbol: str) -> str:
    """Binance's spot symbol id for a base symbol: `BTCUSDT`."""
    return f"{symbol}USDT"


def _binance_symbol_info(symbol: str, halted: bool) -> dict[str, Any]:
    coin = UNIVERSE[symbol]
    return {
        "symbol": binance_symbol(symbol),
        "status": "BREAK" if halted else "TRADING",
        "baseAsset": symbol,
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _binance_decimal(coin.binance_tick),
                "maxPrice": _binance_decimal(round(coin.ref_usd * 1000.0)),
                "tickSize": _binance_decimal(coin.binance_tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _binance_decimal(coin.binance_step),
                "maxQty": _binance_decimal(round(9_000_000.0 / coin.ref_usd)),
                "stepSize": _binance_decimal(coin.binance_step),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": _binance_decimal(round(1_000_000.0 / coin.ref_usd)),
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    }


def binance_exchange_info(symbols: Iterable[str], halted: set[str], server_time_ms: int) -> dict[str, Any]:
    """`GET /api/v3/exchangeInfo`: rate limits and one spot USDT symbol per coin (BREAK when halted)."""
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ],
        "exchangeFilters": [],
        "symbols": [_binance_symbol_info(s, s in halted) for s in symbols],
    }


def binance_update_id(tick: int, index: int) -> int:
    """A `lastUpdateId` that advances with every model tick and differs per symbol."""
    return BINANCE_UPDATE_ID_BASE + tick * 64 + index


def binance_depth(wire: WireBook, limit: int, update_id: int) -> dict[str, Any]:
    """`GET /api/v3/depth`: `lastUpdateId` and [price, qty] string pairs, best first; no timestamp."""
    return {
        "lastUpdateId": update_id,
        "bids": [[_binance_decimal(p), _binance_decimal(s)] for p, s in wire.bids[:limit]],
        "asks": [[_binance_decimal(p), _binance_decimal(s)] for p, s in wire.asks[:limit]],
    }


def binance_error(code: int, msg: str) -> dict[str, Any]:
    """Binance's error body: `{"code": -1003, "msg": ...}`."""
    return {"code": code, "msg": msg}


def binance_rate_limited(banned_until_ms: int | None) -> dict[str, Any]:
    """The -1003 bodies Binance sends with 429 (too many requests) and 418 (IP banned)."""
    if banned_until_ms is None:
        return binance_error(
            -1003,
            "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
            "Please use the websocket for live updates to avoid polling the API.",
        )
    return binance_error(
        -1003,
        f"Way too many requests; IP(127.0.0.1) banned until {banned_until_ms}. "
        "Please use the websocket for live updates to avoid bans.",
    )


SERVER_ERROR_HTML = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
)
"""What a venue's load balancer answers with when the service behind it is down."""

MAINTENANCE_HTML = "<!DOCTYPE html><html><head><title>Maintenance</title></head><body>Service maintenance"
"""A 200 answer that is not JSON at all (a captive or maintenance page, cut short)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: int, doc: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A compact JSON answer; NaN is never written as a bare literal (the builders send "NaN")."""
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return Reply(status, body, JSON_TYPE, headers)


def html_reply(status: int, text: str) -> Reply:
    """An HTML answer, as load balancers and maintenance pages send."""
    return Reply(status, text.encode(), "text/html")


def venue_error(
    venue: str, kind: str, now_ms: int, odd: bool, retry_after_sec: float | None = BAN_SECONDS
) -> Reply:
    """The venue's own answer for an error fault: "error_rate" and "server_error" (503, or 500 when
    not `odd`), "ban" (418), "rate_limit" (429), "bad_json" (200 that is not JSON).

    429 and 418 carry `Retry-After: <retry_after_sec>` as both venues send it; None sends none.
    """
    retry = () if retry_after_sec is None else (("Retry-After", f"{retry_after_sec:g}"),)
    blocked_sec = BAN_SECONDS if retry_after_sec is None else retry_after_sec
    if kind == "error_rate" or (kind == "server_error" and odd):
        return html_reply(503, SERVER_ERROR_HTML.format(code=503, reason="Service Temporarily Unavailable"))
    if kind == "server_error":
        return html_reply(500, SERVER_ERROR_HTML.format(code=500, reason="Internal Server Error"))
    if kind == "bad_json":
        return html_reply(200, MAINTENANCE_HTML)
    if kind == "ban":
        if venue == "upbit":
            blocked = f"Too many API requests. Blocked for {blocked_sec:g}s."
            return json_reply(418, upbit_error("too_many_requests", blocked), retry)
        return json_reply(418, binance_rate_limited(now_ms + round(blocked_sec * 1000)), retry)
    if kind == "rate_limit":
        if venue == "upbit":
            return json_reply(429, upbit_error("too_many_requests", "Too many API requests."), retry)
        return json_reply(429, binance_rate_limited(None), retry)
    raise ValueError(f"not an error fault: {kind!r}")
