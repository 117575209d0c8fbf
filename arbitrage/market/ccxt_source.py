"""The production market source: real ccxt against Upbit and Binance, or against `arbitrage sim`.

One tick is one concurrent round of requests on ccxt's async clients, with ccxt's rate limiter
on: Upbit's books for every symbol plus KRW-USDT in one multi-market `/v1/orderbook` request,
Binance's through `fetch_order_book` per symbol. Markets load once (on the first tick, so a
venue that is down at start is retried like any other failure) or are set from a cached listing.

Failures never reach the strategy as data. A ccxt error becomes `MarketDataError` named after
its class ("RateLimitExceeded", "RequestTimeout", ...), and an answer ccxt cannot turn into a
book at all becomes "BadResponse"; the engine counts either and skips the tick. Books that do
parse are returned as they came, however bad, so the engine rejects and counts them: a market
missing from Upbit's answer or refused by Binance as an invalid symbol (a halted market) comes
back as an empty book.

Back-pressure: a venue that answers 429 or 418 is left alone for the wait `RateLimits` sets
(Retry-After first, else exponential, both capped). While either venue waits, a tick sends no
request at all and fails with the kind the limit was first reported under ("RateLimitExceeded"
or "DDoSProtection"), so nothing is traded on a venue during its ban.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from arbitrage.market.backoff import LIMIT_STATUSES, RateLimits, header, parse_retry_after
from arbitrage.market.book import Level, MarketSnapshot, OrderBook
from arbitrage.market.source import MarketDataError
from arbitrage.market.universe import FX_SYMBOL

T = TypeVar("T")
log = logging.getLogger("arbitrage.market.ccxt")

VENUES = ("upbit", "binance")
UPBIT_QUOTE = "KRW"
BINANCE_QUOTE = "USDT"
BOOK_LEVELS = 20
"""Binance depth requested per symbol: at or under 50 levels ccxt prices the request at weight 2."""
DEFAULT_TIMEOUT_SEC = 5.0
PARSE_FAILURES = (TypeError, ValueError, KeyError, AttributeError, IndexError)
"""What ccxt's parsers raise when an answer is not the JSON they expect."""
MESSAGE_CHARS = 240


class VenueBackingOff(ccxt.RateLimitExceeded):  # type: ignore[misc]
    """A request refused before it was sent, because its venue is being left alone after a 429/418."""

    def __init__(self, venue: str, wait_sec: float, status: int | None) -> None:
        after = f" after HTTP {status}" if status is not None else ""
        super().__init__(f"{venue}: backing off {wait_sec:.1f} s more{after}; no request sent")
        self.venue = venue
        self.wait_sec = wait_sec


class _BackPressure:
    """Mixed into a ccxt client: never sends while its venue is backed off, and reports 429/418 answers.

    `fetch` is the one place every REST request of a ccxt client passes (public, signed, market
    loading), and `handle_errors` the one place that sees every answer's status and headers.
    """

    rate_limits: RateLimits
    id: str

    async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        left = self.rate_limits.refuse(self.id)
        if left > 0.0:
            raise VenueBackingOff(self.id, left, self.rate_limits.last_status(self.id))
        return await super().fetch(url, method, headers, body)  # type: ignore[misc]

    def handle_errors(
        self, code: int, reason: str, url: str, method: str, headers: Any, body: str, response: Any,
        request_headers: Any, request_body: Any,
    ) -> Any:  # fmt: skip
        if code in LIMIT_STATUSES:
            retry_after = parse_retry_after(header(headers, "Retry-After"), time.time())
            backoff = self.rate_limits.on_limited(self.id, code, retry_after)
            if backoff.started:
                shown = "none" if retry_after is None else f"{retry_after:g} s"
                log.info(
                    "%s answered %d (Retry-After %s): no request to it for %.1f s",
                    self.id, code, shown, backoff.wait_sec,
                )  # fmt: skip
        elif code is not None and code < 400:
            self.rate_limits.on_answer(self.id)
        return super().handle_errors(  # type: ignore[misc]
            code, reason, url, method, headers, body, response, request_headers, request_body
        )


class _UpbitStatuses(ccxt_async.upbit):  # type: ignore[misc]
    """ccxt's Upbit client, classifying 429 and 418 by status as ccxt's Binance client does.

    Upbit documents 429 as its rate limit and 418 as the temporary IP block that follows.
    ccxt's Upbit class turns any JSON error body into a bare ExchangeError before it looks at
    the status, which would hide a rate limit among all other errors.
    """

    def handle_errors(
        self, code: int, reason: str, url: str, method: str, headers: Any, body: str, response: Any,
        request_headers: Any, request_body: Any,
    ) -> Any:  # fmt: skip
        if code == 429:
            raise ccxt.RateLimitExceeded(f"{self.id} {code} {reason} {body}")
        if code == 418:
            raise ccxt.DDoSProtection(f"{self.id} {code} {reason} {body}")
        return super().handle_errors(
            code, reason, url, method, headers, body, response, request_headers, request_body
        )


class _Upbit(_BackPressure, _UpbitStatuses):
    """Upbit with back-pressure."""


class _Binance(_BackPressure, ccxt_async.binance):  # type: ignore[misc]
    """Binance with back-pressure."""


def point_at(exchange: Any, base_url: str) -> None:
    """Send every REST endpoint of `exchange` to `base_url`, keeping each endpoint's path."""
    base = base_url.rstrip("/")
    api: dict[str, Any] = exchange.urls["api"]
    for key, value in list(api.items()):
        if isinstance(value, str):
            resolved = value.replace("{hostname}", str(getattr(exchange, "hostname", "")))
            api[key] = base + urlsplit(resolved).path


def _venue_clients(
    loop: asyncio.AbstractEventLoop,
    timeout_sec: float,
    rate_limits: RateLimits,
    exchange_url: str | None = None,
    credentials: Mapping[str, tuple[str, str]] | None = None,
) -> tuple[Any, Any]:
    common = {"enableRateLimit": True, "timeout": round(timeout_sec * 1000), "asyncio_loop": loop}
    keys = credentials or {}
    upbit_auth = {"apiKey": keys["upbit"][0], "secret": keys["upbit"][1]} if "upbit" in keys else {}
    binance_auth = {"apiKey": keys["binance"][0], "secret": keys["binance"][1]} if "binance" in keys else {}
    upbit = _Upbit({**common, **upbit_auth})
    options = {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": not binance_auth,
        "fetchMargins": not binance_auth,
    }
    binance = _Binance({**common, **binance_auth, "options": options})
    upbit.rate_limits = binance.rate_limits = rate_limits
    if exchange_url is not None:
        point_at(upbit, exchange_url)
        point_at(binance, exchange_url)
    return upbit, binance


class VenuePair:
    """ccxt's async Upbit and Binance spot clients on one private event loop, closed together.

    `exchange_url` points both at a local simulator. `credentials` maps "upbit"/"binance" to
    (key, secret); Binance then skips its private currency and margin listings on
    `load_markets`, so the only signed requests are orders. `listings` ({"upbit": [...],
    "binance": [...]}) sets the markets without loading them over the network. `rate_limits`,
    shared with whatever else talks to the same venues, is the back-off state both clients honour:
    no request leaves for a venue that is backed off (`VenueBackingOff` is raised instead).
    `waited_ms` is the time callers spent in `run`: waiting on the venues and ccxt's rate limiter,
    which the loop leaves out of its own processing time.
    """

    def __init__(
        self,
        timeout_sec: float,
        exchange_url: str | None = None,
        credentials: Mapping[str, tuple[str, str]] | None = None,
        listings: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.rate_limits = rate_limits if rate_limits is not None else RateLimits()
        self.upbit: Any
        self.binance: Any
        self.upbit, self.binance = _venue_clients(
            self.loop, timeout_sec, self.rate_limits, exchange_url, credentials
        )
        if listings is not None:
            self.upbit.set_markets(list(listings["upbit"]))
            self.binance.set_markets(list(listings["binance"]))
        self._closed = False
        self.waited_ms = 0.0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Drive one coroutine on the pair's loop, from the calling thread; its time adds to `waited_ms`."""
        began = time.perf_counter()
        try:
            return self.loop.run_until_complete(coro)
        finally:
            self.waited_ms += (time.perf_counter() - began) * 1000.0

    def close(self) -> None:
        """Close both clients' HTTP sessions and the event loop; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.loop.run_until_complete(self._close_clients())
        finally:
            self.loop.close()

    async def _close_clients(self) -> None:
        await asyncio.gather(self.upbit.close(), self.binance.close())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _data_error(venue: str, exc: BaseException) -> MarketDataError:
    kind = type(exc).__name__ if isinstance(exc, ccxt.BaseError) else "BadResponse"
    return MarketDataError(kind, f"{venue}: {_one_line(exc)}")


def _levels(raw: Any) -> tuple[Level, ...]:
    nan = float("nan")
    return tuple((nan if p is None else float(p), nan if s is None else float(s)) for p, s, *_ in raw)


class _Freshness:
    """First-seen times of book versions, for venues whose books carry no timestamp.

    Binance's spot depth has only `lastUpdateId`. A book is as old as the first time this
    source saw its update id: a venue that keeps serving one version goes stale.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[object, int]] = {}

    def stamp(self, venue: str, symbol: str, version: object, now_ms: int) -> int:
        key = (venue, symbol)
        seen = self._seen.get(key)
        if seen is not None and seen[0] == version:
            return seen[1]
        self._seen[key] = (version, now_ms)
        return now_ms


class CcxtSource:
    """A `MarketSource` on ccxt's async Upbit and Binance clients, driven from one private event loop.

    `exchange_url` points both clients at a local simulator; without it they talk to the real
    venues. `timeout_sec` bounds every request; `tick_interval_sec` turns elapsed wall time into
    the tick numbers the strategy measures holding time in. `listings` ({"upbit": [...],
    "binance": [...]}, as `listings()` returns) skips loading markets over the network.
    `rate_limits` is the venues' back-off state, shared with the live executor when there is one.
    """

    name = "ccxt"
    does_io = True

    def __init__(
        self,
        symbols: Sequence[str],
        exchange_url: str | None = None,
        *,
        timeout_sec: float = DEFAULT_TIMEOUT_SEC,
        tick_interval_sec: float = 0.5,
        levels: int = BOOK_LEVELS,
        listings: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.symbols = tuple(symbols)
        self.levels = levels
        self._interval = tick_interval_sec
        self._venues = VenuePair(timeout_sec, exchange_url, listings=listings, rate_limits=rate_limits)
        self.rate_limits = self._venues.rate_limits
        self._limit_kind: dict[str, str] = {}
        self.upbit: Any = self._venues.upbit
        self.binance: Any = self._venues.binance
        self._loaded = listings is not None
        self._fresh = _Freshness()
        self._t0: float | None = None
        self._tick = 0

    def listings(self) -> dict[str, list[dict[str, Any]]]:
        """The loaded markets of both venues, to hand to another source as `listings`."""
        return {
            "upbit": list(self.upbit.markets.values()) if self.upbit.markets else [],
            "binance": list(self.binance.markets.values()) if self.binance.markets else [],
        }

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The private loop both venues' clients live on."""
        return self._venues.loop

    def snapshot_coroutine(self) -> Coroutine[Any, Any, MarketSnapshot]:
        """The next tick's fetch, not yet started; the tick number is taken now."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._tick = max(self._tick + 1, int((now - self._t0) / self._interval) + 1)
        return self._snapshot(self._tick)

    def snapshot(self) -> MarketSnapshot:
        """Fetch one tick's books from both venues; raises `MarketDataError` when the tick has no data."""
        return self._venues.run(self.snapshot_coroutine())

    def close(self) -> None:
        """Close both clients' HTTP sessions and the event loop."""
        self._venues.close()

    async def _load_markets(self) -> None:
        results = await asyncio.gather(
            self.upbit.load_markets(), self.binance.load_markets(), return_exceptions=True
        )
        for venue, outcome in zip(VENUES, results, strict=True):
            if isinstance(outcome, BaseException):
                raise self._failure(venue, outcome) from outcome
        self._loaded = True

    def _failure(self, venue: str, exc: BaseException) -> MarketDataError:
        """The tick's error; a refusal for back-off is counted under the kind its limit came as."""
        if isinstance(exc, VenueBackingOff):
            return MarketDataError(self._limit_kind.get(venue, "RateLimitExceeded"), str(exc))
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            self._limit_kind[venue] = type(exc).__name__
        return _data_error(venue, exc)

    def _refuse_while_backing_off(self) -> None:
        for venue in VENUES:
            left = self.rate_limits.refuse(venue)
            if left > 0.0:
                raise self._failure(venue, VenueBackingOff(venue, left, self.rate_limits.last_status(venue)))

    async def _snapshot(self, tick: int) -> MarketSnapshot:
        self._refuse_while_backing_off()
        if not self._loaded:
            await self._load_markets()
        upbit_symbols = [s for s in (FX_SYMBOL, *self.symbols) if f"{s}/{UPBIT_QUOTE}" in self.upbit.markets]
        binance_symbols = [s for s in self.symbols if f"{s}/{BINANCE_QUOTE}" in self.binance.markets]
        results = await asyncio.gather(
            self.upbit.fetch_order_books([f"{s}/{UPBIT_QUOTE}" for s in upbit_symbols]),
            *(self.binance.fetch_order_book(f"{s}/{BINANCE_QUOTE}", self.levels) for s in binance_symbols),
            return_exceptions=True,
        )
        now_ms = int(time.time() * 1000)
        upbit_raw, binance_raw = results[0], dict(zip(binance_symbols, results[1:], strict=True))
        if isinstance(upbit_raw, BaseException):
            raise self._failure("upbit", upbit_raw) from upbit_raw
        for outcome in binance_raw.values():
            if isinstance(outcome, BaseException) and not isinstance(outcome, ccxt.BadSymbol):
                raise self._failure("binance", outcome) from outcome
        try:
            upbit = {s: self._upbit_book(s, upbit_raw, now_ms) for s in (FX_SYMBOL, *self.symbols)}
            binance = {s: self._binance_book(s, binance_raw.get(s), now_ms) for s in self.symbols}
        except PARSE_FAILURES as exc:
            raise MarketDataError("BadResponse", f"unparseable book: {_one_line(exc)}") from exc
        fx = upbit.pop(FX_SYMBOL)
        return MarketSnapshot(tick=tick, fx=fx, upbit=upbit, binance=binance)

    def _upbit_book(self, symbol: str, books: Any, now_ms: int) -> OrderBook:
        raw = books.get(f"{symbol}/{UPBIT_QUOTE}")
        if raw is None:
            return OrderBook("upbit", symbol, UPBIT_QUOTE, (), (), now_ms)
        bids, asks = _levels(raw["bids"]), _levels(raw["asks"])
        stamp = raw.get("timestamp")
        if stamp is None:
            stamp = self._fresh.stamp("upbit", symbol, (bids, asks), now_ms)
        return OrderBook("upbit", symbol, UPBIT_QUOTE, bids, asks, int(stamp))

    def _binance_book(self, symbol: str, raw: Any, now_ms: int) -> OrderBook:
        if raw is None or isinstance(raw, BaseException):
            return OrderBook("binance", symbol, BINANCE_QUOTE, (), (), now_ms)
        version = raw.get("nonce")
        if version is None:
            raise ValueError(f"binance depth for {symbol} has no lastUpdateId: not a depth answer")
        bids, asks = _levels(raw["bids"]), _levels(raw["asks"])
        stamp = raw.get("timestamp")
        if stamp is None:
            stamp = self._fresh.stamp("binance", symbol, version, now_ms)
        return OrderBook("binance", symbol, BINANCE_QUOTE, bids, asks, int(stamp))
