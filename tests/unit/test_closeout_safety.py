"""The pieces that keep the close-out from crashing: last usable books, evidence write failures,
the space reserved for the final flush, and the process-wide stop request."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbitrage.evidence_failure import EvidenceFailures
from arbitrage.logs import EvidenceFileLog
from arbitrage.market.book import MarketSnapshot, OrderBook
from arbitrage.market.last_books import LastUsableBooks, SymbolBooks
from arbitrage.run_evidence import CLOSEOUT_RESERVE, EvidenceDir, ManifestBase
from arbitrage.stop_request import StopRequest, install_signal_handlers, startup_refusal
from evidence.writer import JsonlAppender


def _book(venue: str, symbol: str, quote: str, timestamp_ms: int) -> OrderBook:
    return OrderBook(venue, symbol, quote, ((100.0, 5.0),), ((101.0, 5.0),), timestamp_ms)


def _snapshot(tick: int, ts: int, symbols: tuple[str, ...]) -> MarketSnapshot:
    return MarketSnapshot(
        tick,
        _book("upbit", "USDT", "KRW", ts),
        {s: _book("upbit", s, "KRW", ts) for s in symbols},
        {s: _book("binance", s, "USDT", ts) for s in symbols},
    )


def test_last_usable_books_survive_a_tick_that_dropped_the_symbol() -> None:
    books = LastUsableBooks(max_age_ms=3000)
    books.remember(_snapshot(1, 10_000, ("BTC", "ETH")))
    books.remember(_snapshot(2, 10_500, ("ETH",)))
    found = books.for_exit("BTC", now_ms=12_000)
    assert isinstance(found, SymbolBooks) and found.tick == 1
    assert found.snapshot().symbols() == ["BTC"]
    assert isinstance(books.for_exit("ETH", now_ms=12_000), SymbolBooks)


def test_last_usable_books_older_than_the_bound_or_never_seen_give_a_reason() -> None:
    books = LastUsableBooks(max_age_ms=3000)
    books.remember(_snapshot(4, 10_000, ("BTC",)))
    old = books.for_exit("BTC", now_ms=13_001)
    assert isinstance(old, str) and "3.0s old (tick 4)" in old and "book_max_age_sec 3s" in old
    assert isinstance(books.for_exit("SOL", now_ms=10_000), str)


def test_an_appender_whose_file_was_removed_refuses_to_pretend(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.jsonl"
    appender = JsonlAppender(path)
    appender.append({"seq": 0})
    path.unlink()
    with pytest.raises(FileNotFoundError) as caught:
        appender.append({"seq": 1})
    assert caught.value.filename == str(path)
    appender.close()


def test_a_log_file_on_a_full_device_reports_once_and_prints_no_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    reported: list[OSError] = []
    handler = EvidenceFileLog(Path("/dev/full"), reported.append)
    logger = logging.getLogger("test.closeout.full")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(3):
            logger.error("line %d", n)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert len(reported) == 1 and reported[0].strerror == "No space left on device"
    assert reported[0].filename == "/dev/full"
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.allow_log("ERROR", "^evidence write failed, stopping the run", count=1)
def test_the_first_failure_stops_once_and_names_path_and_cause(tmp_path: Path) -> None:
    stops: list[str] = []
    failures = EvidenceFailures(lambda: stops.append("stop"), tmp_path)
    failures.report(OSError(28, "No space left on device", str(tmp_path / "kpi.json")))
    failures.report(FileNotFoundError(2, "No such file or directory"))
    assert stops == ["stop"] and failures.first is not None
    line = failures.first.line()
    assert line.startswith("arbitrage: ") and "\n" not in line
    assert f"{tmp_path / 'kpi.json'}: No space left on device (errno 28)" in line


def _manifest_base() -> ManifestBase:
    return ManifestBase(
        run_id="smoke_20260101T000000Z_abcdef", phase="smoke", mode="paper",
        started_at="2026-01-01T00:00:00+00:00", duration_minutes=None, expected_duration_seconds=None,
        heartbeat_interval_seconds=1.0, ticks=1, seed=0, market_source="synthetic", config={},
        config_hash="0" * 64, pid=1,
    )  # fmt: skip


def test_the_closeout_reserve_is_allocated_unsealed_and_released(tmp_path: Path) -> None:
    evidence = EvidenceDir(tmp_path / "run", _manifest_base())
    evidence.reserve_closeout_space(1_048_576)
    reserve = evidence.path / CLOSEOUT_RESERVE
    assert os.stat(reserve).st_blocks * 512 >= 1_048_576
    evidence.write("engine_notes.json", {"a": 1})
    evidence.seal("failed")
    files = json.loads((evidence.path / "manifest.json").read_text())["files"]
    assert set(files) == {"engine_notes.json"}
    evidence.release_closeout_space()
    evidence.release_closeout_space()
    assert not reserve.exists()


@pytest.fixture
def restored_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_real_sigterm_is_a_stop_request_with_its_name(restored_handlers: None) -> None:
    stop = StopRequest()
    assert startup_refusal(stop) is None
    install_signal_handlers(stop)
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.event.wait(5)
    stop.request("DURATION_REACHED")
    assert stop.reason == "SIGTERM"
    assert startup_refusal(stop) == "arbitrage: stopped by SIGTERM during start-up; nothing was started"
