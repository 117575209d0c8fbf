"""Fetch a tick's market data without letting slow I/O hold the loop past its deadline or a stop.

A venue that answers in 4 s must not stretch a 40 s run to 44 s, nor delay a SIGTERM by a
whole request. A source computed in process (`does_io` False) is simply called: it cannot hang,
and a hand-off to another thread would cost more than the snapshot. A source that does I/O
offers its snapshot as a coroutine on its own event loop, which the loop's thread drives itself,
giving the tick up as soon as the run's deadline passes or a stop is requested: no thread is
woken per tick, and every decision and every fill stays on the loop's thread.

Each fetch is timed (`last_wait_ms`): the tick's market-data wait, the requests and whatever ccxt's
rate limiter spaced them by. The loop subtracts it from the tick's time to get the engine's own
processing time, which D98's loop latency means (see `processing_ms`); a live run's order round
trips are left out the same way (`Trader.take_venue_wait_ms`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from arbitrage.market.book import MarketSnapshot
from arbitrage.market.source import AsyncSnapshots, MarketSource

POLL_SEC = 0.05


async def _settled(task: asyncio.Task[Any], deadline: float | None, stop: threading.Event) -> bool:
    """Wait for `task`, looking at the stop and the deadline every POLL_SEC; False when given up."""
    while True:
        done, _ = await asyncio.wait({task}, timeout=POLL_SEC)
        if done:
            return True
        if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return False


def processing_ms(tick_ms: float, wait_ms: float) -> float:
    """The engine's own time in a tick: its whole time less its waits on the venues (never negative)."""
    return max(0.0, tick_ms - wait_ms)


class DeadlineFetcher:
    """Takes one snapshot per call from `source`, within the run's deadline and its stop."""

    def __init__(self, source: MarketSource) -> None:
        self._io: AsyncSnapshots | None = None
        if source.does_io:
            if not isinstance(source, AsyncSnapshots):
                raise TypeError(f"market source {source.name!r} does I/O but offers no snapshot coroutine")
            self._io = source
        self.source = source
        self.abandoned = 0
        self.last_wait_ms = 0.0
        """How long the latest `fetch` took, whatever it returned or raised."""
        self._abandoned_task: asyncio.Task[MarketSnapshot] | None = None

    def fetch(self, deadline: float | None, stop: threading.Event) -> MarketSnapshot | None:
        """The snapshot, or None when the deadline passed or a stop came first.

        MarketDataError from the source propagates unchanged.
        """
        began = time.perf_counter()
        try:
            return self._fetch(deadline, stop)
        finally:
            self.last_wait_ms = (time.perf_counter() - began) * 1000.0

    def _fetch(self, deadline: float | None, stop: threading.Event) -> MarketSnapshot | None:
        source = self._io
        if source is None:
            return self.source.snapshot()
        loop = source.event_loop
        task = loop.create_task(source.snapshot_coroutine())
        if loop.run_until_complete(_settled(task, deadline, stop)):
            return task.result()
        self.abandoned += 1
        self._abandoned_task = task
        return None

    @property
    def gave_up(self) -> bool:
        """Whether the loop gave a fetch up: its venue is the slow one, and `close` cancels that fetch."""
        return self._abandoned_task is not None

    def fetch_at_stop(self, timeout_sec: float) -> MarketSnapshot | None:
        """One more snapshot after the loop has stopped (its stop request already set), within
        `timeout_sec`; None when given up. Never after the loop gave a fetch up (`gave_up`)."""
        if self.gave_up:
            raise RuntimeError("a fetch the loop gave up is still owed its close")
        return self.fetch(time.monotonic() + timeout_sec, threading.Event())

    def close(self) -> None:
        """Cancel a fetch the loop gave up, then close the source. Nothing waits for that fetch's
        books any more, and its venue is the one not answering: letting it run to its request
        timeout only held the stop (5.6 s against a venue that had stopped answering)."""
        task, self._abandoned_task = self._abandoned_task, None
        if task is not None and self._io is not None:
            task.cancel()
            self._io.event_loop.run_until_complete(asyncio.wait({task}))
            if not task.cancelled():
                task.exception()
        self.source.close()
