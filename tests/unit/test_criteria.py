"""D77-4's criteria on crafted facts: each one fails on the breach it names, passes just short of it,
and says "not applicable" on a run shorter than its window; the priorities add up to the verdict."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from evidence.criteria import (
    CONDITIONAL_GO,
    EXIT_CODES,
    GO,
    NO_GO,
    Judged,
    Windows,
    alert_success,
    cpu,
    crash,
    dlq,
    guard_triggers,
    judge_d77,
    longest_span,
    loop_latency,
    memory_growth,
    notifier_down,
    overall_verdict,
    round_trip_stagnation,
    smoke_opportunities,
    win_rate,
)
from evidence.kpi_catalog import CATALOG, GROUPS, kpi_groups
from evidence.run_facts import RunFacts, facts_from_documents

START = 1_700_000_000.0
README = Path(__file__).resolve().parents[2] / "README.md"
ALERTS = {"notifier_available": False, "sent_count": 0, "dlq_count": 0, "disabled_count": 3}


def beat(t: float, closed: int = 0, wins: int = 0, cpu_pct: float = 5.0, rss: float = 80.0) -> dict[str, Any]:
    return {
        "epoch_time": START + t,
        "kpi": {"closed_trades": closed, "wins": wins},
        "sys": {"cpu_pct": cpu_pct},
        "rss_mb": rss,
        "guards": {"drawdown_pct": 0.0, "peak_pnl": 1.0, "consecutive_losses": 0},
    }


def facts(
    seconds: float,
    beats: list[dict[str, Any]] | None = None,
    kpi: dict[str, Any] | None = None,
    phase: str = "smoke",
    log: str | None = "",
) -> RunFacts:
    base_kpi: dict[str, Any] = {
        "closed_trades": 4, "wins": 2, "opportunities_generated": 5, "alerts": ALERTS,
        "loop_latency_ms": {"p50": 1.0, "p95": 3.0, "p99": 8.0}, "rejected_orders": {}, "rejected_books": {},
        "guards": None,
    }  # fmt: skip
    summary = {"run_started_epoch": START, "run_ended_epoch": START + seconds, "duration_seconds": seconds}
    lines = beats if beats is not None else [beat(t) for t in range(0, int(seconds) + 1, 60)]
    return facts_from_documents(
        {"phase": phase, "status": "ended"}, summary, base_kpi | (kpi or {}), lines, log
    )


def outcome(row: Judged) -> str:
    return row.outcome


def test_priorities_add_up_to_the_verdict_and_its_exit_code() -> None:
    assert overall_verdict([]) == GO
    assert overall_verdict(["medium"]) == CONDITIONAL_GO
    assert overall_verdict(["high", "medium"]) == CONDITIONAL_GO
    assert overall_verdict(["high", "critical"]) == NO_GO
    assert EXIT_CODES == {GO: 0, CONDITIONAL_GO: 3, NO_GO: 1}


def test_longest_span_counts_only_consecutive_breaches() -> None:
    assert longest_span([(0, True), (60, True), (120, False), (180, True), (200, True)]) == 60
    assert longest_span([(0, False), (60, False)]) == 0
    assert longest_span([(0, True)]) == 0


def test_win_rate_below_half_fails_only_when_it_lasts_the_window() -> None:
    losing = [beat(t, closed=t // 60 + 1, wins=0) for t in range(0, 2401, 60)]
    assert outcome(win_rate(facts(2400, losing), Windows())) == "fail"
    recovering = [beat(t, closed=10, wins=2 if t < 1200 else 6) for t in range(0, 2401, 60)]
    row = win_rate(facts(2400, recovering), Windows())
    assert (row.outcome, row.observed) == ("pass", 60.0)
    assert outcome(win_rate(facts(1700, losing[:29]), Windows())) == "not applicable"
    assert outcome(win_rate(facts(1700, losing[:29]), Windows(win_rate=600))) == "fail"


def test_round_trip_stagnation_runs_from_start_to_end() -> None:
    trading = [beat(t, closed=t // 600) for t in range(0, 3601, 60)]
    assert outcome(round_trip_stagnation(facts(3600, trading), Windows())) == "pass"
    late = [beat(t, closed=0 if t < 1900 else 1) for t in range(0, 3601, 60)]
    row = round_trip_stagnation(facts(3600, late), Windows())
    assert (row.outcome, row.observed) == ("fail", 1920.0)
    stuck_at_end = [beat(t, closed=1 if t >= 60 else 0) for t in range(0, 3601, 60)]
    assert outcome(round_trip_stagnation(facts(3600, stuck_at_end), Windows())) == "fail"


def test_cpu_over_80_fails_when_sustained_for_ten_minutes() -> None:
    hot = [beat(t, cpu_pct=95.0 if 100 <= t <= 700 else 10.0) for t in range(0, 1201, 50)]
    assert outcome(cpu(facts(1200, hot), Windows())) == "fail"
    spiky = [beat(t, cpu_pct=95.0 if t % 300 else 10.0) for t in range(0, 1201, 50)]
    assert outcome(cpu(facts(1200, spiky), Windows())) == "pass"
    assert outcome(cpu(facts(500, hot[:11]), Windows())) == "not applicable"


def test_loop_latency_p99_over_100_ms_fails_a_run_long_enough() -> None:
    slow = {"loop_latency_ms": {"p99": 140.0}}
    assert outcome(loop_latency(facts(400, kpi=slow), Windows())) == "fail"
    assert outcome(loop_latency(facts(400), Windows())) == "pass"
    assert outcome(loop_latency(facts(90, kpi=slow), Windows())) == "not applicable"


def test_memory_growth_over_ten_percent_an_hour_fails() -> None:
    leaking = [beat(t, rss=100.0 + 30.0 * t / 3600) for t in range(0, 3601, 60)]
    row = memory_growth(facts(3600, leaking))
    assert row.outcome == "fail" and isinstance(row.observed, float) and row.observed > 25
    flat = [beat(t, rss=100.0 + (t % 120) / 60) for t in range(0, 3601, 60)]
    assert outcome(memory_growth(facts(3600, flat))) == "pass"
    assert outcome(memory_growth(facts(30, [beat(0), beat(30)]))) == "not applicable"


def test_crash_dlq_and_notifier() -> None:
    assert outcome(crash(facts(60, log="boom\nTraceback (most recent call last):\n  x"))) == "fail"
    assert outcome(crash(facts(60))) == "pass"
    assert outcome(crash(facts(60, log=None))) == "not checked"
    assert outcome(dlq(facts(60, kpi={"alerts": ALERTS | {"dlq_count": 1}}))) == "fail"
    assert outcome(dlq(facts(60, kpi={"alerts": None}))) == "fail"
    assert outcome(notifier_down(facts(60))) == "not applicable"
    down = ALERTS | {"notifier_available": True, "sent_count": 0, "dlq_count": 4}
    assert outcome(notifier_down(facts(60, kpi={"alerts": down}))) == "fail"
    up = ALERTS | {"notifier_available": True, "sent_count": 3, "dlq_count": 1}
    assert outcome(notifier_down(facts(60, kpi={"alerts": up}))) == "pass"


def test_alert_success_and_guard_triggers_over_their_windows() -> None:
    flaky = {"alerts": ALERTS | {"notifier_available": True, "sent_count": 8, "dlq_count": 2}}
    assert outcome(alert_success(facts(1800, kpi=flaky), Windows())) == "fail"
    assert outcome(alert_success(facts(1800), Windows())) == "not applicable"
    busy = {"rejected_books": {"stale": 120}, "rejected_orders": {"below_minimum": 40}}
    row = guard_triggers(facts(7200, kpi=busy), Windows())
    assert (row.outcome, row.observed) == ("fail", 80.0)
    assert outcome(guard_triggers(facts(7200), Windows())) == "pass"


def test_smoke_needs_an_opportunity() -> None:
    assert outcome(smoke_opportunities(facts(90, kpi={"opportunities_generated": 0}))) == "fail"
    assert outcome(smoke_opportunities(facts(90, kpi={"opportunities_generated": 0}, phase="longrun"))) == (
        "not applicable"
    )


def test_a_short_clean_run_is_go_and_rows_come_critical_first() -> None:
    rows = judge_d77(facts(90))
    assert overall_verdict(r.priority for r in rows if r.outcome == "fail") == GO
    order = [r.priority for r in rows]
    assert order == sorted(order, key=("critical", "high", "medium").index)
    assert {r.name for r in rows if r.outcome == "not applicable"} >= {"cpu", "win_rate", "guard_triggers"}


def test_windows_reject_unknown_names_and_non_positive_seconds() -> None:
    assert Windows().overridden({"win_rate": 30}).win_rate == 30
    with pytest.raises(ValueError, match="unknown window 'winrate'"):
        Windows().overridden({"winrate": 30})
    with pytest.raises(ValueError, match="expected seconds > 0"):
        Windows().overridden({"cpu": 0})


def test_the_catalog_has_d77_4s_32_kpis_in_four_groups_and_values_for_each() -> None:
    counts = {group: sum(k.group == group for k in CATALOG) for group in GROUPS}
    assert counts["trading"] >= 11 and counts["risk"] >= 6
    assert counts["performance"] >= 7 and counts["alerting"] >= 8
    assert len({k.name for k in CATALOG}) == len(CATALOG) >= 32
    values = kpi_groups(facts(3600, [beat(t, closed=t // 600, wins=t // 1200) for t in range(0, 3601, 60)]))
    assert values["trading"]["win_rate_pct"] == 50.0
    assert values["trading"]["round_trips_per_hour"] == 4.0
    assert values["alerting"]["notifier_available"] == 0.0


def test_the_readme_defines_every_kpi_in_one_line_exactly_as_the_catalog() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| \w+ \| (.+?) \|$", README.read_text(), re.MULTILINE))
    missing = [k.name for k in CATALOG if rows.get(k.name) != k.definition]
    assert not missing, f"README KPI table lacks or differs for: {missing}"


@pytest.mark.parametrize(
    ("wins", "cpu_pct", "p99", "expected"),
    [(50, 80.0, 100.0, "pass"), (49, 80.1, 100.1, "fail")],
)
def test_limits_sit_exactly_at_d77_4s_thresholds(
    wins: int, cpu_pct: float, p99: float, expected: str
) -> None:
    lines = [beat(t, closed=100, wins=wins, cpu_pct=cpu_pct) for t in range(0, 3601, 60)]
    run = facts(3600, lines, kpi={"loop_latency_ms": {"p99": p99}})
    assert [outcome(rule(run, Windows())) for rule in (win_rate, cpu, loop_latency)] == [expected] * 3
