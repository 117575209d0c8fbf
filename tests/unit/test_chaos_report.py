"""The chaos report from crafted outcomes: totals, the summary line, the page, shard merging."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gates.chaos.live import LiveTable, plain_line
from gates.chaos.model import FAULT_KINDS, Classification, FaultEvent
from gates.chaos.page import render_page, write_page
from gates.chaos.report import (
    ReportError,
    build_report,
    exit_code,
    failing_runs,
    merge_reports,
    read_report,
    summary_line,
    write_report,
)
from gates.chaos.schedule import build_schedule, shard
from tests.support.chaos_outcomes import CHECKER_SEC, WALLCLOCK_EXTRA_SEC, outcome_for

CLASSES: dict[int, Classification] = {1: "failed-closed", 3: "LOST", 4: "UNEXPLAINED", 6: "failed-closed"}


def _report(
    runs: int = 8, classes: dict[int, Classification] = CLASSES, part: tuple[int, int] | None = None
) -> dict[str, Any]:
    full = build_schedule(4, runs, 10.0)
    schedule = full if part is None else shard(full, *part)
    outcomes = [outcome_for(plan, classes.get(plan.index, "clean")) for plan in schedule.runs]
    return build_report(
        "chaos_test_s4", schedule, runs, {"workers": 1}, outcomes, campaign_wallclock_sec=90.0
    )


def test_totals_and_last_line_from_crafted_outcomes() -> None:
    report = _report()
    plans = build_schedule(4, 8, 10.0).runs
    faults = sum(len(p.faults) for p in plans)
    by_class = report["totals"]["by_classification"]
    assert by_class == {"clean": 4, "failed-closed": 2, "LOST": 1, "UNEXPLAINED": 1}
    assert report["totals"]["faults_struck"] == faults
    assert summary_line(report) == f"chaos: 8 runs, {faults} faults, lost 1, unexplained 1"
    assert exit_code(report) == 1
    assert [o["index"] for o in failing_runs(report)] == [3, 4]
    assert report["schedule"] == [p.line() for p in plans]
    assert report["runs_per_hour"] == 320.0
    expected_pct = round(100 * CHECKER_SEC / (10.0 + WALLCLOCK_EXTRA_SEC), 2)
    assert report["totals"]["checker_overhead_pct"] == expected_pct
    per_kind = report["totals"]["by_fault_kind"]
    assert set(per_kind) == set(FAULT_KINDS)
    lost_kinds = plans[3].kinds()
    assert all(per_kind[k]["LOST"] == 1 for k in lost_kinds)
    assert sum(row["struck"] for row in per_kind.values()) == faults


def test_a_live_campaign_sums_its_runs_filled_venue_orders_by_fate() -> None:
    schedule = build_schedule(4, 3, 10.0)
    outcomes = [outcome_for(plan, "failed-closed") for plan in schedule.runs]
    outcomes[0].venue_orders = {"booked": 12, "unbooked": 1}
    outcomes[2].venue_orders = {"booked": 30, "unknown": 2}
    report = build_report("chaos_live_s4", schedule, 3, {"workers": 1}, outcomes, campaign_wallclock_sec=30.0)
    assert report["totals"]["venue_orders"] == {"booked": 42, "unbooked": 1, "unknown": 2}
    assert _report()["totals"]["venue_orders"] == {}, "a paper campaign has no venue orders"


def test_faults_struck_counts_measured_strikes_not_plans() -> None:
    plan = build_schedule(4, 1, 10.0).runs[0]
    never = outcome_for(plan)
    never.events = []
    twice = outcome_for(plan)
    twice.events = [
        FaultEvent(plan.faults[0].kind, "strike", 2.0),
        FaultEvent(plan.faults[0].kind, "strike", 3.0),
    ]
    schedule = build_schedule(4, 1, 10.0)
    assert build_report("a", schedule, 1, {}, [never], 10.0)["totals"]["faults_struck"] == 0
    assert build_report("a", schedule, 1, {}, [twice], 10.0)["totals"]["faults_struck"] == 2


def test_all_clean_or_failed_closed_exits_zero() -> None:
    report = _report(classes={2: "failed-closed"})
    assert exit_code(report) == 0
    assert summary_line(report).endswith("lost 0, unexplained 0")


def test_page_has_one_timeline_per_run_and_nothing_external(tmp_path: Path) -> None:
    report = _report()
    for o in report["outcomes"]:
        o["replay_command"] = f"arbitrage chaos --seed 4 --runs 8 --duration 10s --only {o['index']}"
    page = write_page(report, tmp_path).read_text(encoding="utf-8")
    assert page.count('<svg class="timeline"') == 8
    assert "<script" not in page.lower()
    assert "http" not in page.lower()
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "leg 3 of run 3 missing from the ledger" in page
    assert "arbitrage chaos --seed 4 --runs 8 --duration 10s --only 4" in page
    assert "--only 1<" not in page
    assert summary_line(report) in page


def test_page_escapes_what_runs_report() -> None:
    report = _report(runs=5, classes={0: "LOST"})
    report["outcomes"][0]["reasons"] = ["<b>row</b> & more"]
    page = render_page(report)
    assert "&lt;b&gt;row&lt;/b&gt; &amp; more" in page
    assert "<b>row</b>" not in page


def test_report_round_trips_through_json(tmp_path: Path) -> None:
    report = _report()
    assert read_report(write_report(report, tmp_path)) == report


def test_merge_of_shards_equals_the_whole() -> None:
    whole = _report(runs=9)
    parts = [(Path(f"s{i}.json"), _report(runs=9, part=(i, 3))) for i in (1, 2, 3)]
    merged = merge_reports("chaos_merged", parts)
    assert merged["outcomes"] == whole["outcomes"]
    assert merged["schedule"] == whole["schedule"]
    assert merged["totals"] == whole["totals"]
    assert merged["runs_per_hour"] == pytest.approx(sum(p["runs_per_hour"] for _, p in parts))
    assert summary_line(merged) == summary_line(whole)


def test_merge_refuses_mismatched_or_repeated_shards() -> None:
    one = _report(runs=9, part=(1, 3))
    other_seed = dict(_report(runs=9, part=(2, 3)), seed=5)
    with pytest.raises(ReportError, match="seed 5"):
        merge_reports("m", [(Path("a.json"), one), (Path("b.json"), other_seed)])
    with pytest.raises(ReportError, match="runs"):
        merge_reports("m", [(Path("a.json"), one), (Path("b.json"), _report(runs=10, part=(2, 3)))])
    with pytest.raises(ReportError, match=r"run 0 is in both a\.json and b\.json"):
        merge_reports("m", [(Path("a.json"), one), (Path("b.json"), one)])


def test_read_report_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot read chaos report"):
        read_report(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text('{"seed": 1}', encoding="utf-8")
    with pytest.raises(ReportError, match="missing runs, duration_sec, outcomes, schedule"):
        read_report(tmp_path / "x.json")


def test_live_table_prints_plain_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    plans = build_schedule(4, 3, 10.0).runs
    with LiveTable(3, stream=stream) as live:
        for plan in plans:
            live.on_outcome(outcome_for(plan, CLASSES.get(plan.index, "clean")))
    lines = stream.getvalue().splitlines()
    assert lines == [plain_line(outcome_for(p, CLASSES.get(p.index, "clean"))) for p in plans]
    assert "failed-closed" in lines[1] and "exit=1" in lines[1] and "wall=  11.0s" in lines[1]


def test_live_table_on_a_terminal_draws_a_rich_table() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=140)
    plans = build_schedule(4, 5, 10.0).runs
    with LiveTable(5, stream=stream, console=console) as live:
        for plan in plans:
            live.on_outcome(outcome_for(plan, CLASSES.get(plan.index, "clean")))
    text = stream.getvalue()
    assert "5/5 runs: clean 2, failed-closed 1, LOST 1, UNEXPLAINED 1" in text
    assert "classification" in text and "0004" in text


def test_page_marks_faults_never_struck_or_never_cleared() -> None:
    report = _report(runs=2, classes={})
    first, second = report["outcomes"]
    first["events"] = []
    second["events"] = [{"kind": "disk-full", "action": "strike", "at_sec": 3.0, "detail": ""}]
    page = render_page(report)
    assert page.count("(not struck)") == len(first["faults"]) + len(second["faults"])
    assert "disk-full struck 3.00s, never cleared" in page
    assert 'opacity="0.5"' in page
