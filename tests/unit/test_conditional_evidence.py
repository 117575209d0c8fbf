"""Conditional evidence without services: the schemas, the rule, the daily tally and the trace's bounds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arbitrage.config import StrategyConfig
from arbitrage.daily_tally import Counters, DailyTally
from arbitrage.decision_trace import PARTIAL_NAME, DecisionTracer
from arbitrage.strategy import EntryIntent, Quote
from evidence.conditional_rule import RunConditions, required_files, requirements
from evidence.names import DAILY_REPORT, DECISION_TRACE, STOP_REASON_SNAPSHOT
from evidence.schema import validation_errors

MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC).timestamp()


def _conditions(**changes: object) -> RunConditions:
    base: dict[str, object] = {
        "phase": "smoke", "stop_reason": "DURATION_REACHED", "trace": False,
        "started_epoch": MIDNIGHT - 3600, "ended_epoch": MIDNIGHT - 60,
    }  # fmt: skip
    return RunConditions(**(base | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"stop_reason": "TICKS_COMPLETED"}, []),
        ({"stop_reason": "SIGTERM"}, [STOP_REASON_SNAPSHOT]),
        ({"stop_reason": "GUARD_DAILY_LOSS"}, [STOP_REASON_SNAPSHOT]),
        ({"stop_reason": "WATCHDOG_CRITICAL"}, [STOP_REASON_SNAPSHOT]),
        ({"stop_reason": "WARNING_LOGGED"}, [STOP_REASON_SNAPSHOT]),
        ({"stop_reason": "BOOTSTRAP_FAILED"}, [STOP_REASON_SNAPSHOT]),
        ({"stop_reason": "EXCEPTION_RuntimeError"}, [STOP_REASON_SNAPSHOT]),
        ({"phase": "longrun"}, [DAILY_REPORT]),
        ({"ended_epoch": MIDNIGHT + 1}, [DAILY_REPORT]),
        ({"trace": True}, [DECISION_TRACE]),
        ({"phase": "longrun", "stop_reason": "SIGINT", "trace": True},
         [STOP_REASON_SNAPSHOT, DAILY_REPORT, DECISION_TRACE]),
    ],
)  # fmt: skip
def test_rule_requires_exactly_the_files_the_run_calls_for(
    changes: dict[str, object], expected: list[str]
) -> None:
    assert required_files(_conditions(**changes)) == expected


def test_rule_says_unknown_when_the_evidence_cannot_tell() -> None:
    unknown = requirements(RunConditions(None, None, None, None, None))
    assert [r.required for r in unknown] == [None, None, None], unknown


def test_rule_reads_its_facts_back_from_the_documents() -> None:
    manifest = {"phase": "longrun", "config": {"run": {"trace": True}}}
    summary = {"stop_reason": "SIGTERM", "run_started_epoch": MIDNIGHT - 5, "run_ended_epoch": MIDNIGHT + 5}
    conditions = RunConditions.from_documents(manifest, summary)
    assert conditions == RunConditions("longrun", "SIGTERM", True, MIDNIGHT - 5, MIDNIGHT + 5)
    older = RunConditions.from_documents({"phase": "smoke", "config": {"run": {}}}, summary)
    assert older.trace is False, "a manifest from before --trace existed means tracing was off"
    assert RunConditions.from_documents(None, summary).trace is None, "no manifest: cannot tell"


class _Totals:
    """Cumulative counters a test moves by hand, as the engine's portfolio and tallies move."""

    def __init__(self) -> None:
        self.now = Counters(0, 0, 0.0, 0, 0)

    def __call__(self) -> Counters:
        return self.now


def test_daily_tally_splits_a_run_across_a_utc_midnight() -> None:
    totals = _Totals()
    start = MIDNIGHT - 1800
    tally = DailyTally(start, totals)
    totals.now = Counters(2, 1, 5.0, 1, 0)
    tally.observe(MIDNIGHT - 600, 5.0)
    totals.now = Counters(3, 1, 2.0, 1, 0)
    tally.observe(MIDNIGHT - 300, 2.0)
    tally.observe(MIDNIGHT + 10, 2.0)
    totals.now = Counters(5, 3, 4.0, 4, 2)
    tally.observe(MIDNIGHT + 600, 4.0)
    days = tally.report(MIDNIGHT + 3600)
    assert [d.date for d in days] == ["2026-03-01", "2026-03-02"]
    first, second = days
    assert (first.runtime_hours, first.round_trips, first.wins, first.pnl_usd) == (0.5, 3, 1, 2.0)
    assert first.max_drawdown_usd == pytest.approx(3.0), "the day peaked at +5 and fell to +2"
    assert first.win_rate_pct == pytest.approx(33.33)
    assert (second.runtime_hours, second.round_trips, second.wins, second.pnl_usd) == (1.0, 2, 2, 2.0)
    assert (second.exchange_errors, second.rate_limit_hits, second.max_drawdown_usd) == (3, 2, 0.0)


def test_daily_tally_shows_a_day_no_tick_reached() -> None:
    totals = _Totals()
    tally = DailyTally(MIDNIGHT - 60, totals)
    days = tally.report(MIDNIGHT + 86_400 + 60)
    assert [d.date for d in days] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert [d.runtime_hours for d in days] == pytest.approx([60 / 3600, 24.0, 60 / 3600], abs=1e-6)
    assert all(d.round_trips == 0 and d.win_rate_pct is None for d in days)


def _intent(net: float) -> EntryIntent:
    rich = Quote("BTC", "upbit_rich", 0.01, 1.4e8, 1e5, 1400.0, net + 0.15, net)
    poor = Quote("BTC", "binance_rich", 0.01, 1.4e8, 1e5, 1400.0, -net, -net - 0.15)
    return EntryIntent(rich, (rich, poor))


def test_trace_is_bounded_and_counts_what_it_dropped(tmp_path: Path) -> None:
    errors: list[OSError] = []
    tracer = DecisionTracer(tmp_path, StrategyConfig(), 0.5, errors.append, max_entries=3)
    for tick in range(5):
        tracer.entry(tick, _intent(3.2), "opened", f"T{tick:06d}")
    tracer.write("smoke_x")
    document = json.loads((tmp_path / DECISION_TRACE).read_text())
    assert (document["recorded"], document["dropped"], len(document["entries"])) == (3, 2, 3)
    assert validation_errors(DECISION_TRACE, document) == []
    first = document["entries"][0]
    assert first["premiums_pct"]["binance_rich"]["net"] == pytest.approx(-3.35)
    assert "net premium 3.2000% >= entry threshold" in first["reason"], first["reason"]
    assert not (tmp_path / PARTIAL_NAME).exists(), (
        "the streamed lines are removed once the document is written"
    )
    assert errors == []


def test_trace_keeps_only_whole_lines_of_a_torn_stream(tmp_path: Path) -> None:
    tracer = DecisionTracer(tmp_path, StrategyConfig(), 0.5, lambda exc: None)
    tracer.entry(1, _intent(3.1), "opened", "T000001")
    tracer.entry(2, _intent(3.3), "rejected", None, "below the venue minimum")
    tracer._close_stream()
    partial = tmp_path / PARTIAL_NAME
    partial.write_bytes(partial.read_bytes()[:-20])
    tracer.write("smoke_x")
    document = json.loads((tmp_path / DECISION_TRACE).read_text())
    assert (document["recorded"], document["dropped"]) == (1, 1)
    assert validation_errors(DECISION_TRACE, document) == []
