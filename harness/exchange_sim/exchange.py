"""The simulated venues' state: the seeded model, the fault settings, the counters, and request routing.

Fault kinds: "rate_limit" (429 with the venue's body: Upbit `too_many_requests`, Binance -1003),
"ban" (418; both carry `Retry-After: retry_after_sec`, 60 unless set, none when null),
"server_error" (503 and 500 in turn, as a load balancer's HTML page), "timeout"
(the request is held unanswered until the fault clears), "bad_json" (a 200 that is not JSON),
"stale" (prices and timestamps frozen when the fault was set; Binance's `lastUpdateId` too),
"crossed", "empty", "nan" (prices sent as the string "NaN", which JSON parsers accept), "negative",
and "halted" (see `public`). The order faults "lost_reply", "lost_order", "lookup_down",
"late_fill" and "held_order" (`order_faults`) touch only signed order placement and lookup.
`error_rate` answers that share of requests with a 503; `latency_ms` delays every answer.

The model advances with the wall clock, one step per `dt_sec` since start, so what is served
depends only on the seed and the elapsed time.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Final

from arbitrage.market.book import MarketSnapshot, OrderBook
from arbitrage.market.model import PREMIUM_HALF_LIFE_SEC, MarketModel
from arbitrage.market.universe import FX_SYMBOL
from harness.exchange_sim import control, public
from harness.exchange_sim import dialects as d
from harness.exchange_sim.auth import SimKeys
from harness.exchange_sim.control import VENUES, FaultState
from harness.exchange_sim.order_faults import order_fault
from harness.exchange_sim.orders import slipped
from harness.exchange_sim.private import PrivateApi

HOLD_MAX_SEC: Final = 60.0
"""A "timeout" holds a request at most this long (or until the fault clears), then drops it unanswered."""
VENUE_PREFIXES: Final = (("/v1/", "upbit"), ("/api/", "binance"))


def venue_of(path: str) -> str | None:
    """Which venue a path belongs to, by its prefix; None for neither."""
    return next((venue for prefix, venue in VENUE_PREFIXES if path.startswith(prefix)), None)


def _book_of(snap: MarketSnapshot, venue: str, symbol: str) -> OrderBook:
    if venue == "upbit":
        return snap.fx if symbol == FX_SYMBOL else snap.upbit[symbol]
    return snap.binance[symbol]


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
        slippage_bps: float = 0.0,
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
        self.slippage_bps = slippage_bps
        self.private = PrivateApi(keys or SimKeys(), self.fill_book, clock)
        start = {"faults": list(faults), "latency_ms": latency_ms, "error_rate": error_rate}
        self.configure({**start, "retry_after_sec": retry_after_sec})

    # -- model and state ---------------------------------------------------------------------
    def _tick_ms(self, tick: int) -> int:
        return round((self._start + tick * self.dt_sec) * 1000.0)

    def _advance(self) -> MarketSnapshot:
        """Step the model up to the wall clock; the caller holds the lock."""
        target = int((self._clock() - self._start) / self.dt_sec)
        while self._model.tick < target:
            self._current = self._model.step(self._tick_ms(self._model.tick + 1))
        return self._current

    def now_ms(self) -> int:
        """The simulator's clock in epoch milliseconds (Binance's `serverTime`)."""
        return round(self._clock() * 1000.0)

    def configure(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the fault settings named in `update`; raises ValueError on a bad value."""
        with self._lock:
            state = control.updated(self._state, update, (*self.symbols, FX_SYMBOL))
            rejects = control.names(update.get("reject_orders"), "reject_orders", VENUES)
            reject_after = control.counts(update.get("reject_after"), "reject_after", VENUES)
            if "stale" in state.faults and "stale" not in self._state.faults:
                self._frozen = self._advance()
            elif "stale" not in state.faults:
                self._frozen = None
            self._state = state
            if "reject_orders" in update:
                self.private.set_rejects(rejects or frozenset())
            if "reject_after" in update:
                self.private.set_reject_after(reject_after or {})
            self._lock.notify_all()
            return self._stats_locked()

    def stats(self) -> dict[str, Any]:
        """The control API's view: requests per route, active faults, the model tick."""
        with self._lock:
            return self._stats_locked()

    def _stats_locked(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            **self._state.to_json(),
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
            return control.control(self, method, path, body)
        venue = venue_of(path)
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
            return order_fault(active, method, path, answer, self._count, self._hold)
        return public.answer(self, venue, path, query, state)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.faulted[kind] += 1

    def _venue_fault(self, venue: str, state: FaultState) -> d.Reply | None:
        """The answer a venue-wide fault gives instead of data, or None for no such fault."""
        if "timeout" in state.faults:
            self._count("timeout")
            self._hold("timeout")
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
        return d.venue_error(venue, kind, self.now_ms(), odd, state.retry_after_sec)

    def _hold(self, fault: str) -> None:
        """Return once `fault` is cleared, the server closes, or HOLD_MAX_SEC have passed."""
        deadline = time.monotonic() + HOLD_MAX_SEC
        with self._lock:
            while fault in self._state.faults and not self._closing.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._lock.wait(min(left, 1.0))

    # -- what the routes read ----------------------------------------------------------------
    def books(
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

    def listed(self, venue: str, state: FaultState) -> list[str]:
        """The markets `venue` lists under `state` (halted ones left out)."""
        symbols = public.listed_symbols(venue, self.symbols)
        return [s for s in symbols if "halted" not in state.book_faults(venue, s)]

    def live_book(self, venue: str, symbol: str) -> OrderBook | None:
        """The current unfaulted book, before any slippage (`fill_book`); None for an unlisted market."""
        if symbol not in public.listed_symbols(venue, self.symbols):
            return None
        with self._lock:
            return _book_of(self._advance(), venue, symbol)

    def fill_book(self, venue: str, symbol: str) -> OrderBook | None:
        """The live book as a market order meets it: moved `slippage_bps` against the taker."""
        book = self.live_book(venue, symbol)
        return book if book is None or not self.slippage_bps else slipped(book, self.slippage_bps)
