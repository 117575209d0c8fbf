"""A local exchange that speaks Upbit's and Binance's REST dialects, generated from the seeded model.

Tests can never reach a real venue, so the production ccxt path runs against this server
instead: the same requests, the same response shapes, the same error bodies. It can also
misbehave on purpose and is re-configured while it runs through a small control API:

- `GET /_control/stats`: `requests` served per route, the active `faults`, `latency_ms`,
  `error_rate`, `markets`, `venues`, the model `tick`, `faulted` answers per fault kind, and
  from the signed API (`sim_private`) `private_requests` per "METHOD /path", `orders` and `reject_orders`.
- `POST /_control/faults`: `{"faults": [...], "latency_ms": n, "error_rate": p, "markets": [...] | null,
  "venues": [...] | null, "retry_after_sec": s | null}` replaces the fault set (missing keys keep
  their values) and returns the new state like stats; `"reject_orders": [venue...]` makes venues
  refuse orders. `markets` limits book faults to those base symbols ("USDT" is Upbit's KRW-USDT);
  `venues` limits every fault to "upbit" or "binance".

Fault kinds: "rate_limit" (429 with the venue's body: Upbit `too_many_requests`, Binance -1003),
"ban" (418; both carry `Retry-After: retry_after_sec`, 60 unless set, none when null),
"server_error" (503 and 500 in turn, as a load balancer's HTML page), "timeout"
(the request is held unanswered until the fault clears), "bad_json" (a 200 that is not JSON),
"stale" (prices and timestamps frozen when the fault was set; Binance's `lastUpdateId` too),
"crossed", "empty", "nan" (prices sent as the string "NaN", which JSON parsers accept), "negative",
and "halted" (Upbit leaves the market out of `/v1/market/all` and `/v1/orderbook`; Binance lists it
with status BREAK and answers its depth with -1121 "Invalid symbol."). The order faults
"lost_reply", "lost_order" and "lookup_down" (`sim_order_faults`) touch only signed order
placement and lookup. `error_rate` answers that share of requests with a 503; `latency_ms`
delays every answer.

The model advances with the wall clock, one step per `dt_sec` since start, so what is served
depends only on the seed and the elapsed time. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from arbitrage.market import sim_dialects as d
from arbitrage.market.book import MarketSnapshot, OrderBook
from arbitrage.market.model import PREMIUM_HALF_LIFE_SEC, MarketModel
from arbitrage.market.sim_order_faults import ORDER_FAULTS, order_fault
from arbitrage.market.sim_private import PrivateApi, SimKeys
from arbitrage.market.universe import FX_SYMBOL

VENUE_FAULTS = ("rate_limit", "ban", "server_error", "timeout", "bad_json")
"""Faults that replace a whole answer of a venue."""
FAULT_KINDS = (*VENUE_FAULTS, *d.BOOK_FAULTS, *ORDER_FAULTS)
VENUES = ("upbit", "binance")
CONTROL_KEYS = ("faults", "latency_ms", "error_rate", "markets", "venues", "reject_orders", "retry_after_sec")
HOLD_MAX_SEC = 60.0
"""A "timeout" holds a request at most this long (or until the fault clears), then drops it unanswered."""


@dataclass(frozen=True, slots=True)
class FaultState:
    """What the simulator does wrong right now. `markets`/`venues` of None mean every one."""

    faults: frozenset[str] = frozenset()
    latency_ms: float = 0.0
    error_rate: float = 0.0
    markets: frozenset[str] | None = None
    venues: frozenset[str] | None = None
    retry_after_sec: float | None = d.BAN_SECONDS

    def hits(self, venue: str) -> bool:
        return self.venues is None or venue in self.venues

    def book_faults(self, venue: str, symbol: str) -> tuple[str, ...]:
        if not self.hits(venue) or (self.markets is not None and symbol not in self.markets):
            return ()
        return tuple(f for f in d.BOOK_FAULTS if f in self.faults)


def _param(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0].strip() if values else None


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{what} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _names(value: Any, what: str, known: Iterable[str]) -> frozenset[str] | None:
    if value is None:
        return None
    allowed = set(known)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be null or a list of strings, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(allowed)}")
    return frozenset(value)


class ExchangeSim:
    """The simulated venues' state: the model, the fault set, and the request counters."""

    def __init__(
        self,
        seed: int,
        symbols: Sequence[str],
        *,
        dt_sec: float = 0.5,
        levels: int = 20,
        premium_half_life_sec: float = PREMIUM_HALF_LIFE_SEC,
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        faults: Iterable[str] = (),
        retry_after_sec: float | None = d.BAN_SECONDS,
        clock: Callable[[], float] = time.time,
        keys: SimKeys | None = None,
    ) -> None:
        self.symbols = tuple(symbols)
        self.dt_sec = dt_sec
        self._model = MarketModel(
            seed, self.symbols, dt_sec=dt_sec, levels=levels, premium_half_life_sec=premium_half_life_sec
        )
        self._clock = clock
        self._start = clock()
        self._lock = threading.Condition()
        self._closing = threading.Event()
        self._current = self._model.books_at_current(self._tick_ms(0))
        self._frozen: MarketSnapshot | None = None
        self._state = FaultState()
        self._rng = random.Random(seed)
        self._server_errors = 0
        self.requests: Counter[str] = Counter()
        self.faulted: Counter[str] = Counter()
        self.private = PrivateApi(keys or SimKeys(), self._live_book, clock)
        self.configure(
            {
                "faults": list(faults),
                "latency_ms": latency_ms,
                "error_rate": error_rate,
                "retry_after_sec": retry_after_sec,
            }
        )

    # -- model and state ---------------------------------------------------------------------
    def _tick_ms(self, tick: int) -> int:
        return round((self._start + tick * self.dt_sec) * 1000.0)

    def _advance(self) -> MarketSnapshot:
        """Step the model up to the wall clock; the caller holds the lock."""
        target = int((self._clock() - self._start) / self.dt_sec)
        while self._model.tick < target:
            self._current = self._model.step(self._tick_ms(self._model.tick + 1))
        return self._current

    def configure(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the fault settings named in `update`; raises ValueError on a bad value."""
        unknown_keys = sorted(set(update) - {*CONTROL_KEYS})
        if unknown_keys:
            raise ValueError(f"unknown keys {unknown_keys}")
        with self._lock:
            state = self._state
            faults = state.faults
            if "faults" in update:
                raw = update["faults"]
                if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
                    raise ValueError(f"faults must be a list of strings, got {raw!r}")
                bad = sorted(set(raw) - set(FAULT_KINDS))
                if bad:
                    hint = " (latency is set with latency_ms)" if "latency" in bad else ""
                    raise ValueError(f"unknown fault kinds {bad}{hint}; known: {list(FAULT_KINDS)}")
                faults = frozenset(raw)
            latency = state.latency_ms
            if "latency_ms" in update:
                latency = _number(update["latency_ms"], "latency_ms", 0.0, 600_000.0)
            error_rate = state.error_rate
            if "error_rate" in update:
                error_rate = _number(update["error_rate"], "error_rate", 0.0, 1.0)
            markets = state.markets
            if "markets" in update:
                markets = _names(update["markets"], "markets", (*self.symbols, FX_SYMBOL))
            venues = state.venues
            if "venues" in update:
                venues = _names(update["venues"], "venues", VENUES)
            retry_after = state.retry_after_sec
            if "retry_after_sec" in update:
                raw_retry = update["retry_after_sec"]
                retry_after = (
                    None
                    if raw_retry is None
                    else _number(raw_retry, "retry_after_sec", 0.0, d.MAX_RETRY_AFTER_SEC)
                )
            if "stale" in faults and "stale" not in state.faults:
                self._frozen = self._advance()
            elif "stale" not in faults:
                self._frozen = None
            rejects = _names(update.get("reject_orders"), "reject_orders", VENUES)
            self._state = FaultState(faults, latency, error_rate, markets, venues, retry_after)
            if "reject_orders" in update:
                self.private.set_rejects(rejects or frozenset())
            self._lock.notify_all()
            return self._stats_locked()

    def stats(self) -> dict[str, Any]:
        """The control API's view: requests per route, active faults, the model tick."""
        with self._lock:
            return self._stats_locked()

    def _stats_locked(self) -> dict[str, Any]:
        s = self._state
        latency: float | int = int(s.latency_ms) if s.latency_ms.is_integer() else s.latency_ms
        return {
            "requests": dict(sorted(self.requests.items())),
            "faults": sorted(s.faults),
            "latency_ms": latency,
            "error_rate": s.error_rate,
            "markets": None if s.markets is None else sorted(s.markets),
            "venues": None if s.venues is None else sorted(s.venues),
            "retry_after_sec": s.retry_after_sec,
            "tick": self._advance().tick,
            "faulted": dict(sorted(self.faulted.items())),
            **self.private.stats(),
        }

    def close(self) -> None:
        """Release every held request; the server is shutting down."""
        self._closing.set()
        with self._lock:
            self._lock.notify_all()

    # -- request handling --------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: Mapping[str, list[str]], body: bytes,
        headers: Mapping[str, str] | None = None, raw_query: str = "",
    ) -> d.Reply | None:  # fmt: skip
        """Answer one request; None means drop the connection without an answer.

        `headers` (lower-case names) and `raw_query` are needed only by signed requests.
        """
        if path.startswith("/_control/"):
            return self._control(method, path, body)
        venue = "upbit" if path.startswith("/v1/") else "binance" if path.startswith("/api/") else None
        private = self.private.claim(method, path, headers or {})
        with self._lock:
            self.requests[path] += 1
            latency = self._state.latency_ms
        if venue is None:
            return d.json_reply(404, {"error": f"no route {path}"})
        if latency > 0 and self._closing.wait(latency / 1000.0):
            return None
        with self._lock:
            state = self._state
        if method != "GET" and not private:
            return d.json_reply(405, {"error": f"{method} not allowed"})
        if state.hits(venue):
            failed = self._venue_fault(venue, state)
            if failed is not None or "timeout" in state.faults:
                return failed
        if private:
            active = state.faults if state.hits(venue) else frozenset()
            answer = partial(self.private.handle, method, path, raw_query, headers or {}, body)
            return order_fault(active, method, path, answer, self._count)
        if venue == "upbit":
            return self._upbit(path, query, state)
        return self._binance(path, query, state)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.faulted[kind] += 1

    def _venue_fault(self, venue: str, state: FaultState) -> d.Reply | None:
        """The answer a venue-wide fault gives instead of data, or None for no such fault."""
        if "timeout" in state.faults:
            self._count("timeout")
            self._hold()
            return None
        with self._lock:
            unlucky = state.error_rate > 0.0 and self._rng.random() < state.error_rate
            kind = "error_rate" if unlucky else next((f for f in d.ERROR_FAULTS if f in state.faults), None)
            if kind is None:
                return None
            self.faulted[kind] += 1
            if kind == "server_error":
                self._server_errors += 1
            odd = self._server_errors % 2 == 1
        return d.venue_error(venue, kind, round(self._clock() * 1000.0), odd, state.retry_after_sec)

    def _hold(self) -> None:
        deadline = time.monotonic() + HOLD_MAX_SEC
        with self._lock:
            while "timeout" in self._state.faults and not self._closing.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._lock.wait(min(left, 1.0))

    def _books(
        self, venue: str, symbols: Iterable[str], state: FaultState
    ) -> list[tuple[str, d.WireBook | None]]:
        """Each symbol's wire book (None when halted), with the active book faults applied."""
        with self._lock:
            current, frozen = self._advance(), self._frozen
        out: list[tuple[str, d.WireBook | None]] = []
        applied: set[str] = set()
        for symbol in symbols:
            faults = state.book_faults(venue, symbol)
            snap = frozen if "stale" in faults and frozen is not None else current
            book = _book_of(snap, venue, symbol)
            out.append((symbol, d.apply_book_faults(book, snap.tick, faults)))
            applied.update(faults)
        with self._lock:
            self.faulted.update(applied)
        return out

    def _listed(self, venue: str, state: FaultState) -> list[str]:
        symbols = [FX_SYMBOL, *self.symbols] if venue == "upbit" else list(self.symbols)
        return [s for s in symbols if "halted" not in state.book_faults(venue, s)]

    def _upbit(self, path: str, query: Mapping[str, list[str]], state: FaultState) -> d.Reply:
        headers = (("Remaining-Req", "group=default; min=1800; sec=29"),)
        if path == "/v1/market/all":
            details = (_param(query, "isDetails") or "").lower() == "true"
            return d.json_reply(200, d.upbit_market_all(self._listed("upbit", state), details), headers)
        if path != "/v1/orderbook":
            return d.json_reply(404, d.upbit_error(404, "Not Found"))
        codes = [c.strip() for c in (_param(query, "markets") or "").split(",") if c.strip()]
        if not codes:
            return d.json_reply(400, d.upbit_error(400, d.UPBIT_MISSING_PARAMETER))
        known = {d.upbit_market_code(s): s for s in (FX_SYMBOL, *self.symbols)}
        wanted = [known[c] for c in codes if c in known]
        if not wanted:
            return d.json_reply(404, d.upbit_error(404, "Code not found"))
        count_text = _param(query, "count")
        count = int(count_text) if count_text and count_text.isdigit() else None
        books = self._books("upbit", wanted, state)
        return d.json_reply(200, [d.upbit_orderbook(s, w, count) for s, w in books if w is not None], headers)

    def _binance(self, path: str, query: Mapping[str, list[str]], state: FaultState) -> d.Reply:
        now_ms = round(self._clock() * 1000.0)
        if path == "/api/v3/ping":
            return d.json_reply(200, {})
        if path == "/api/v3/time":
            return d.json_reply(200, {"serverTime": now_ms})
        if path == "/api/v3/exchangeInfo":
            halted = set(self.symbols) - set(self._listed("binance", state))
            return d.json_reply(200, d.binance_exchange_info(self.symbols, halted, now_ms))
        if path != "/api/v3/depth":
            return d.json_reply(404, d.binance_error(-1000, "Not found."))
        symbol_id = _param(query, "symbol")
        if not symbol_id:
            msg = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            return d.json_reply(400, d.binance_error(-1102, msg))
        limit_text = _param(query, "limit") or "100"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 5000:
            return d.json_reply(400, d.binance_error(-1100, "Illegal characters found in parameter 'limit'."))
        by_id = {d.binance_symbol(s): (i, s) for i, s in enumerate(self.symbols)}
        if symbol_id not in by_id:
            return d.json_reply(400, d.binance_error(-1121, "Invalid symbol."))
        index, symbol = by_id[symbol_id]
        [(_, wire)] = self._books("binance", [symbol], state)
        if wire is None:
            return d.json_reply(400, d.binance_error(-1121, "Invalid symbol."))
        doc = d.binance_depth(wire, int(limit_text), d.binance_update_id(wire.tick, index))
        return d.json_reply(200, doc, (("x-mbx-used-weight-1m", "2"),))

    def _control(self, method: str, path: str, body: bytes) -> d.Reply:
        if path == "/_control/stats" and method == "GET":
            return d.json_reply(200, self.stats())
        if path == "/_control/faults" and method == "POST":
            try:
                update = json.loads(body or b"{}")
                if not isinstance(update, dict):
                    raise ValueError("the body must be a JSON object")
                return d.json_reply(200, self.configure(update))
            except ValueError as exc:
                return d.json_reply(400, {"error": str(exc)})
        return d.json_reply(404, {"error": f"no control route {method} {path}"})

    def _live_book(self, venue: str, symbol: str) -> OrderBook | None:
        """The current unfaulted book a market order fills against; None for an unlisted market."""
        if symbol not in ((FX_SYMBOL, *self.symbols) if venue == "upbit" else self.symbols):
            return None
        with self._lock:
            return _book_of(self._advance(), venue, symbol)


def _book_of(snap: MarketSnapshot, venue: str, symbol: str) -> OrderBook:
    if venue == "upbit":
        return snap.fx if symbol == FX_SYMBOL else snap.upbit[symbol]
    return snap.binance[symbol]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the simulator's own counters say what it served."""

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = self.server.sim.handle(
                method, parts.path, parse_qs(parts.query), body, headers, parts.query
            )
            if reply is None:
                self.close_connection = True
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class SimServer(ThreadingHTTPServer):
    """The HTTP front of an `ExchangeSim`, bound to 127.0.0.1 only."""

    daemon_threads = True

    def __init__(self, sim: ExchangeSim, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.sim = sim

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> SimServer:
        """Serve from a daemon thread and return self, for in-process use."""
        threading.Thread(target=self.serve_forever, args=(0.05,), name="exchange-sim", daemon=True).start()
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and close the socket."""
        self.sim.close()
        self.shutdown()
        self.server_close()
