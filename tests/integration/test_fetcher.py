"""`DeadlineFetcher` against a real `arbitrage sim` subprocess: a slow venue's tick is given up at
the run's deadline or at a stop, counted as abandoned, and cancelled when the source closes;
an in-process source is called on the loop's own thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from arbitrage.market.book import MarketSnapshot
from arbitrage.market.ccxt_source import CcxtSource
from arbitrage.market.fetcher import POLL_SEC, DeadlineFetcher
from arbitrage.market.synthetic import SyntheticSource
from arbitrage.market.universe import top_n
from harness.exchange_sim.client import SimProcess, start_exchange_sim

pytestmark = pytest.mark.integration

SYMBOLS = top_n(5)
LATENCY_MS = 1500
SLACK_SEC = 0.5
"""How much later than asked a give-up may come on a loaded machine (the poll is POLL_SEC)."""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with start_exchange_sim("--seed", "5") as started:
        yield started


@pytest.fixture
def fetcher(sim: SimProcess) -> Iterator[DeadlineFetcher]:
    """A fetcher on a ccxt source whose markets are loaded, then a venue answering in LATENCY_MS."""
    sim.configure({"faults": [], "latency_ms": 0})
    fetcher = DeadlineFetcher(CcxtSource(SYMBOLS, sim.url, timeout_sec=5.0))
    assert fetcher.fetch(None, threading.Event()) is not None
    sim.configure({"latency_ms": LATENCY_MS})
    try:
        yield fetcher
    finally:
        fetcher.close()
        sim.configure({"faults": [], "latency_ms": 0})


def test_a_slow_tick_is_given_up_at_the_deadline_and_cancelled_at_close(
    sim: SimProcess, fetcher: DeadlineFetcher
) -> None:
    before = sim.book_requests()
    started = time.monotonic()
    assert fetcher.fetch(started + 0.3, threading.Event()) is None
    gave_up = time.monotonic() - started
    assert 0.3 <= gave_up < 0.3 + SLACK_SEC, f"gave up after {gave_up:.2f} s for a 0.3 s deadline"
    assert fetcher.abandoned == 1
    assert 300.0 <= fetcher.last_wait_ms <= gave_up * 1000.0
    started = time.monotonic()
    fetcher.close()
    closed = time.monotonic() - started
    assert closed < LATENCY_MS / 1000.0, f"close took {closed:.2f} s: it waited for the venue's answer"
    assert sim.book_requests() == before + 1, "the abandoned fetch sent its request"


def test_a_stop_gives_up_a_slow_tick_without_a_deadline(fetcher: DeadlineFetcher) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    started = time.monotonic()
    timer.start()
    try:
        assert fetcher.fetch(None, stop) is None
    finally:
        timer.cancel()
    gave_up = time.monotonic() - started
    assert 0.2 <= gave_up < 0.2 + SLACK_SEC, f"gave up {gave_up:.2f} s after start for a stop at 0.2 s"
    assert fetcher.abandoned == 1


def test_a_tick_that_answers_in_time_is_returned(fetcher: DeadlineFetcher) -> None:
    started = time.monotonic()
    snapshot = fetcher.fetch(started + 10.0, threading.Event())
    assert isinstance(snapshot, MarketSnapshot) and sorted(snapshot.binance) == sorted(SYMBOLS)
    assert time.monotonic() - started >= LATENCY_MS / 1000.0 - POLL_SEC
    assert fetcher.abandoned == 0
    assert fetcher.last_wait_ms >= LATENCY_MS - POLL_SEC * 1000.0, "the fetch's wait is its own time"


def test_a_fetch_at_stop_answers_within_its_own_bound_and_never_after_a_give_up(
    fetcher: DeadlineFetcher,
) -> None:
    snapshot = fetcher.fetch_at_stop(10.0)
    assert isinstance(snapshot, MarketSnapshot) and sorted(snapshot.binance) == sorted(SYMBOLS)
    assert not fetcher.gave_up
    started = time.monotonic()
    assert fetcher.fetch_at_stop(0.3) is None
    gave_up = time.monotonic() - started
    assert 0.3 <= gave_up < 0.3 + SLACK_SEC, f"gave up after {gave_up:.2f} s for a 0.3 s bound"
    assert fetcher.gave_up and fetcher.abandoned == 1
    with pytest.raises(RuntimeError, match="still owed its close"):
        fetcher.fetch_at_stop(10.0)


class _ThreadNoting(SyntheticSource):
    """The synthetic source, noting which thread asked for each snapshot."""

    def __init__(self) -> None:
        super().__init__(seed=1, symbols=SYMBOLS, dt_sec=0.5)
        self.threads: list[int] = []

    def snapshot(self) -> MarketSnapshot:
        self.threads.append(threading.get_ident())
        return super().snapshot()


def test_an_in_process_source_is_called_on_the_loops_own_thread() -> None:
    source = _ThreadNoting()
    fetcher = DeadlineFetcher(source)
    stop = threading.Event()
    stop.set()
    snapshots = [fetcher.fetch(time.monotonic() - 1.0, stop) for _ in range(3)]
    fetcher.close()
    assert all(isinstance(s, MarketSnapshot) for s in snapshots), "an in-process snapshot cannot hang"
    assert source.threads == [threading.get_ident()] * 3
    assert fetcher.abandoned == 0


class _BlockingIo(SyntheticSource):
    does_io = True


def test_a_source_that_does_io_without_a_coroutine_is_refused() -> None:
    with pytest.raises(TypeError, match="'synthetic' does I/O but offers no snapshot coroutine"):
        DeadlineFetcher(_BlockingIo(seed=1, symbols=SYMBOLS, dt_sec=0.5))
