"""Fetch a tick's market data without letting slow I/O hold the loop past its deadline or a stop.

A venue that answers in 4 s must not stretch a 40 s run to 44 s, nor delay a SIGTERM by a
whole request. The fetch runs on one worker thread; the loop waits for it, but gives up the
tick as soon as the run's deadline passes or a stop is requested. Only the fetch leaves the
loop's thread: every decision and every fill stays on it.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

from arbitrage.market.book import MarketSnapshot
from arbitrage.market.source import MarketSource

POLL_SEC = 0.05


class DeadlineFetcher:
    """Runs `source.snapshot()` on a worker thread and waits for it within limits."""

    def __init__(self, source: MarketSource) -> None:
        self.source = source
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="market-fetch")
        self.abandoned = 0

    def fetch(self, deadline: float | None, stop: threading.Event) -> MarketSnapshot | None:
        """The snapshot, or None when the deadline passed or a stop came first.

        MarketDataError from the source propagates unchanged.
        """
        future = self._pool.submit(self.source.snapshot)
        while True:
            try:
                return future.result(timeout=POLL_SEC)
            except concurrent.futures.TimeoutError:
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    self.abandoned += 1
                    return None

    def close(self) -> None:
        """Wait for an abandoned fetch (bounded by the source's own request timeout), then close."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.source.close()
