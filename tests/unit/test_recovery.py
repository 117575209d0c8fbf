"""Crash recovery's decisions: is a `running` row's owner gone, and what does a recovery exit book."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from arbitrage.config import StrategyConfig
from arbitrage.execution import PairFill, PaperExecutor
from arbitrage.market.book import Level, MarketSnapshot, OrderBook
from arbitrage.owner import owner_state, process_create_time
from arbitrage.portfolio import Portfolio
from arbitrage.recovery import RunRecovery
from arbitrage.recovery_exit import OpenEntry, recovery_exit
from arbitrage.strategy import EntryIntent, ExitIntent, Strategy, entry_quote, exit_quote

HERE = "host-a"
STARTED = 1_700_000_000.0


@pytest.mark.parametrize(
    ("host", "pid", "started", "live_create_time", "expected"),
    [
        (HERE, 4242, STARTED, None, "gone"),
        (HERE, 4242, STARTED, STARTED, "alive"),
        (HERE, 4242, STARTED, STARTED + 1.5, "alive"),
        (HERE, 4242, STARTED, STARTED - 1.5, "alive"),
        (HERE, 4242, STARTED, STARTED + 2.5, "gone"),
        (HERE, 4242, STARTED, STARTED - 600.0, "gone"),
        (HERE, 4242, None, STARTED, "alive"),
        (HERE, 4242, None, None, "gone"),
        ("host-b", 4242, STARTED, None, "foreign"),
        ("host-b", 4242, STARTED, STARTED, "foreign"),
        (None, 4242, STARTED, None, "unknown"),
        (HERE, None, STARTED, None, "unknown"),
    ],
    ids=[
        "pid-free", "same-process", "start-within-slack-late", "start-within-slack-early", "reused-pid-later",
        "reused-pid-earlier", "no-start-recorded-held", "no-start-recorded-free", "other-host-free",
        "other-host-held", "no-host", "no-pid",
    ],
)  # fmt: skip
def test_owner_state(
    host: str | None, pid: int | None, started: float | None, live_create_time: float | None, expected: str
) -> None:
    assert owner_state(host, pid, started, HERE, live_create_time) == expected


def test_process_create_time_of_this_process_and_of_a_reaped_child() -> None:
    assert process_create_time(os.getpid()) == psutil.Process().create_time()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert child.wait(timeout=30) == 0
    assert process_create_time(child.pid) is None


def book(venue: str, quote: str, bids: list[Level], asks: list[Level], symbol: str = "BTC") -> OrderBook:
    return OrderBook(venue, symbol, quote, tuple(bids), tuple(asks), 0)


def snapshot(upbit_bid: float, upbit_ask: float, binance_bid: float, binance_ask: float) -> MarketSnapshot:
    fx = book("upbit", "KRW", [(1379.5, 1e6)], [(1380.5, 1e6)], symbol="USDT")
    upbit = book("upbit", "KRW", [(upbit_bid, 0.001), (upbit_bid - 100_000, 1.0)],
                 [(upbit_ask, 0.001), (upbit_ask + 100_000, 1.0)])  # fmt: skip
    binance = book("binance", "USDT", [(binance_bid, 1.0)], [(binance_ask, 1.0)])
    return MarketSnapshot(5, fx, {"BTC": upbit}, {"BTC": binance})


def stored_entry(fill: PairFill, tick: int, last_tick: int) -> OpenEntry:
    """The entry as `_OPEN_ENTRIES_SQL` reads it back from trade_legs."""
    return OpenEntry(
        run_id="r1", trade_id="T000001", correlation_id="r1:T000001", symbol="BTC",
        direction=fill.quote.direction, qty=fill.binance.qty, upbit_side=fill.upbit.side,
        upbit_vwap_krw=fill.upbit.vwap, upbit_fee_krw=fill.upbit.fee, binance_side=fill.binance.side,
        binance_vwap_usdt=fill.binance.vwap, binance_fee_usdt=fill.binance.fee,
        krw_per_usdt=fill.quote.krw_per_usdt, premium_net_pct=fill.quote.net_pct, tick=tick,
        last_tick=last_tick,
    )  # fmt: skip


def test_a_recovery_exit_books_what_the_engine_would_have_booked() -> None:
    config = StrategyConfig(order_notional_usd=95.0)
    executor = PaperExecutor(config, seed=7)
    fees = Strategy(config, 0.5).fees
    entry_book = snapshot(136_000_000, 136_100_000, 94_990, 95_000)
    quote = entry_quote(entry_book, "BTC", "upbit_rich", 0.002, fees)
    assert quote is not None
    entry = executor.enter(EntryIntent(quote), entry_book)
    assert isinstance(entry, PairFill)
    portfolio = Portfolio()
    position = portfolio.open("T000001", "r1:T000001", entry, tick=2)
    exit_book = snapshot(131_000_000, 131_100_000, 94_990, 95_000)
    engine_quote = exit_quote(exit_book, position.view(), fees)
    assert engine_quote is not None
    closed = portfolio.close(
        position, executor.exit(ExitIntent(position.view(), engine_quote, "flatten")), "x"
    )

    row = recovery_exit(stored_entry(entry, tick=2, last_tick=9), exit_book, config, seed=7)

    assert not isinstance(row, str)
    assert row.leg == "exit" and row.reason == "recovery" and row.tick == 9
    assert (row.upbit_side, row.binance_side) == ("buy", "sell")
    assert row.upbit_vwap_krw == pytest.approx(engine_quote.upbit_vwap_krw)
    assert row.binance_vwap_usdt == pytest.approx(engine_quote.binance_vwap_usdt)
    assert row.pnl_usd == pytest.approx(closed.pnl_usd)
    assert row.pnl_krw == pytest.approx(closed.pnl_krw)


def test_a_recovery_exit_names_a_missing_or_thin_book() -> None:
    config = StrategyConfig()
    fx = book("upbit", "KRW", [(1379.5, 1e6)], [(1380.5, 1e6)], symbol="USDT")
    entry_book = snapshot(136_000_000, 136_100_000, 94_990, 95_000)
    quote = entry_quote(entry_book, "BTC", "upbit_rich", 0.002, Strategy(config, 0.5).fees)
    assert quote is not None
    fill = PaperExecutor(config, 7).enter(EntryIntent(quote), entry_book)
    assert isinstance(fill, PairFill)
    entry = stored_entry(fill, tick=1, last_tick=1)
    assert recovery_exit(entry, MarketSnapshot(1, fx), config, 7) == "no usable book for BTC"
    big = stored_entry(fill, 1, 1)
    thin = OpenEntry(**{**{s: getattr(big, s) for s in OpenEntry.__slots__}, "qty": 50.0})
    assert recovery_exit(thin, entry_book, config, 7) == "book too thin for 50.00000000 BTC"


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (RunRecovery("r1", "paper", 41, True, ["BTC", "ETH"]),
         "arbitrage: recovered crashed run r1 (pid 41): settled 2 open positions with recovery legs"),
        (RunRecovery("r1", "paper", 41, True, [], [("BTC", "no usable book for BTC")]),
         "arbitrage: recovered crashed run r1 (pid 41): left 1 open: no usable book for BTC"),
        (RunRecovery("r1", "paper", 41, True),
         "arbitrage: recovered crashed run r1 (pid 41): no open positions"),
        (RunRecovery("r1", "paper", 41, False, ["ETH"]),
         "arbitrage: crashed run r1 (pid 41), crashed earlier: settled 1 open positions with recovery legs"),
        (RunRecovery("r2", "live", 43, True, [], [("XRP", "live position"), ("BTC", "live position")]),
         "arbitrage: recovered crashed run r2 (pid 43): live, left 2 open positions untouched (BTC, XRP);"
         " live arming is refused until they are reconciled on the exchanges and POSITIONS_RECONCILED is"
         " recorded"),
    ],
    ids=["settled", "no-book", "nothing-open", "earlier", "live"],
)  # fmt: skip
def test_one_line_per_run(run: RunRecovery, expected: str) -> None:
    assert run.line() == expected
