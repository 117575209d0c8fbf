"""`arbitrage verify`'s judgement on crafted evidence: GO on a good run, NO-GO naming the criterion.

Each case breaks one thing the way it breaks in the field (a crash, an edited file, lost lines)
and checks that the verdict names the criterion an operator needs to read.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from arbitrage.cli import main
from evidence import names
from evidence.reader import read_json
from evidence.writer import JsonlAppender, atomic_write_json
from gates.analyzer import FAIL, NOT_APPLICABLE, NOT_CHECKED, PASS, analyze, write_result
from gates.report import render, write_report
from harness.cli_process import run_cli
from tests.evidence_factory import (
    CLOSED_TRADES,
    STARTED_EPOCH,
    make_evidence_dir,
    make_heartbeats,
    refresh_manifest_hashes,
)
from tests.support.ports import refused_port

CLEAN_SUMMARY: dict[str, Any] = {"warnings_count": 0, "warnings": []}
"""The factory's default summary carries one warning; a clean run has none (WARN = FAIL)."""


def good_dir(path: Path, **overrides: Any) -> Path:
    summary = {**CLEAN_SUMMARY, **overrides.pop("chain_summary", {})}
    return make_evidence_dir(path, chain_summary=summary, **overrides)


def failed(path: Path) -> list[str]:
    return analyze(path).failed


def rewrite_heartbeats(path: Path, keep: list[dict[str, Any]]) -> None:
    (path / names.HEARTBEAT).unlink()
    with JsonlAppender(path / names.HEARTBEAT) as appender:
        for line in keep:
            appender.append(line)


def test_good_run_is_go_with_every_criterion_reported(tmp_path: Path) -> None:
    analysis = analyze(good_dir(tmp_path))
    assert analysis.verdict == "GO", [c for c in analysis.criteria if c.verdict == FAIL]
    verdicts = {c.name: c.verdict for c in analysis.criteria}
    assert verdicts["wallclock"] == NOT_APPLICABLE
    assert verdicts["db_recount"] == NOT_CHECKED
    conditional = ("stop_reason_snapshot", "daily_report", "decision_trace")
    assert [verdicts[name] for name in conditional] == [NOT_APPLICABLE] * 3, "a planned smoke run needs none"
    structural = [
        c for c in analysis.criteria if c.name not in ("wallclock", "db_recount", "crash", *conditional)
    ]
    assert {c.verdict for c in structural if c.verdict != NOT_APPLICABLE} == {PASS}
    assert {c.verdict for c in structural[:11]} == {PASS}, "every evidence and invariant row passes"
    assert verdicts["crash"] == NOT_CHECKED, "the factory writes no engine.log"
    assert {c.priority for c in analysis.criteria} == {"critical", "high", "medium"}
    assert analysis.exit_code == 0
    assert analysis.kpis["closed_trades"] == CLOSED_TRADES


def test_heartbeat_lines_removed_after_sealing_fail_density_and_hash(tmp_path: Path) -> None:
    path = good_dir(tmp_path)
    lines = make_heartbeats()
    rewrite_heartbeats(path, [*lines[:2], *lines[5:]])
    analysis = analyze(path)
    assert {"heartbeat_density", "sha256_match"} <= set(analysis.failed)
    density = analysis.criterion("heartbeat_density")
    assert isinstance(density.observed, float) and density.observed > 15.0


def test_heartbeat_gap_is_found_even_when_the_manifest_was_resealed(tmp_path: Path) -> None:
    path = good_dir(tmp_path)
    lines = make_heartbeats()
    rewrite_heartbeats(path, [*lines[:2], *lines[5:]])
    refresh_manifest_hashes(path)
    assert failed(path) == ["heartbeat_density"]


def test_tampered_chain_summary_is_a_hash_mismatch(tmp_path: Path) -> None:
    path = good_dir(tmp_path)
    summary = read_json(path / names.CHAIN_SUMMARY)
    summary["net_pnl"] = {"krw": 9_999_999.0, "usd": 7_000.0}
    atomic_write_json(path / names.CHAIN_SUMMARY, summary)
    analysis = analyze(path)
    assert {"sha256_match", "completeness"} == set(analysis.failed)
    assert "chain_summary.json: sha256 mismatch" in analysis.criterion("sha256_match").detail


def test_missing_kpi_is_named(tmp_path: Path) -> None:
    path = good_dir(tmp_path)
    (path / names.KPI).unlink()
    analysis = analyze(path)
    assert "files_present" in analysis.failed
    assert "kpi.json: missing" in analysis.criterion("files_present").detail
    assert "db" in analysis.failed


def test_empty_heartbeat_is_named(tmp_path: Path) -> None:
    path = good_dir(tmp_path)
    (path / names.HEARTBEAT).write_bytes(b"")
    analysis = analyze(path)
    assert {"files_present", "heartbeat_lines", "loop_progress"} <= set(analysis.failed)
    assert "heartbeat.jsonl: empty" in analysis.criterion("files_present").detail


def test_manifest_left_running_is_reported_as_a_crash(tmp_path: Path) -> None:
    path = good_dir(tmp_path, manifest={"status": "running"})
    analysis = analyze(path)
    assert analysis.failed == ["manifest_status"]
    assert analysis.criterion("manifest_status").detail.startswith("crash:")


def test_stuck_loop_fails_loop_progress(tmp_path: Path) -> None:
    lines = make_heartbeats()
    for line in lines:
        line["loop_count"] = 5
        line["last_loop_ts"] = STARTED_EPOCH
    analysis = analyze(good_dir(tmp_path, heartbeats=lines))
    assert analysis.failed == ["loop_progress"]
    assert "did not advance (5 -> 5)" in analysis.criterion("loop_progress").detail


def test_a_loop_that_starts_late_fails_loop_progress(tmp_path: Path) -> None:
    lines = make_heartbeats()
    for line in lines[:4]:
        line["loop_count"], line["last_loop_ts"] = 0, None
    analysis = analyze(good_dir(tmp_path, heartbeats=lines))
    assert analysis.failed == ["loop_progress"]
    assert "loop silent for 30.0s" in analysis.criterion("loop_progress").detail


def test_wallclock_off_by_more_than_five_percent_fails(tmp_path: Path) -> None:
    path = good_dir(tmp_path, chain_summary={"expected_duration_seconds": 100.0, "duration_seconds": 70.0})
    assert failed(path) == ["wallclock"]


def test_db_counts_that_do_not_match_the_trades_fail(tmp_path: Path) -> None:
    kpi = {"db_counts": {"db_inserts_ok": 2, "db_inserts_failed": 4}}
    assert failed(good_dir(tmp_path, kpi=kpi)) == ["db"]


def test_warnings_and_engine_exit_are_separate_criteria(tmp_path: Path) -> None:
    warning = {"level": "WARNING", "logger": "arbitrage.market", "message": "stale book", "created": 1.0}
    only_exit = make_evidence_dir(tmp_path / "exit", chain_summary={"exit_code": 1})
    assert failed(only_exit) == ["engine_exit"]
    warned = make_evidence_dir(
        tmp_path / "warned", chain_summary={"exit_code": 1, "warnings_count": 1, "warnings": [warning]}
    )
    assert failed(warned) == ["engine_exit", "warnings"]


def test_explicit_unreachable_database_is_no_go_but_an_ambient_one_is_not_checked(tmp_path: Path) -> None:
    path = good_dir(tmp_path)
    dsn = f"postgresql://nobody@127.0.0.1:{refused_port()}/nothing"
    explicit = analyze(path, dsn, dsn_explicit=True).criterion("db_recount")
    assert (explicit.verdict, explicit.observed) == (FAIL, "unreachable")
    assert explicit.detail.startswith("db_recount: unreachable")
    ambient = analyze(path, dsn, dsn_explicit=False).criterion("db_recount")
    assert ambient.verdict == NOT_CHECKED and "unreachable" in ambient.detail


def test_analysis_result_has_observed_limit_verdict_and_kpis(tmp_path: Path) -> None:
    path = good_dir(tmp_path, manifest={"status": "running"})
    result = json.loads(write_result(analyze(path)).read_text())
    assert result["verdict"] == "NO-GO" and result["failed_criteria"] == ["manifest_status"]
    assert all({"name", "observed", "limit", "verdict", "detail"} <= set(c) for c in result["criteria"])
    assert result["kpis"]["closed_trades"] == CLOSED_TRADES


def test_report_is_one_self_contained_file_with_four_charts(tmp_path: Path) -> None:
    events = [
        {"tick": 3, "event": "entry", "symbol": "BTC", "premium_pct": 3.4},
        {"tick": 9, "event": "exit", "symbol": "BTC", "premium_pct": 1.9, "pnl_usd": 1.2},
    ]
    histogram = {"bounds_ms": [0.5, 1.0, 2.5], "counts": [4, 60, 5, 1]}
    path = good_dir(tmp_path, kpi={"trade_events": events, "loop_latency_histogram": histogram})
    page = write_report(analyze(path)).read_text()
    assert page.count("<svg") >= 4
    assert "Loop latency distribution" in page and "GO" in page
    assert "<link" not in page and "src=" not in page and "http" not in page.replace("http://www.w3.org", "")
    assert page.count("<script>") == 1, "the one script is the trade table's inline sorter"
    references = re.findall(r'href="([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page)
    assert references and all(ref.startswith("#") for ref in references), set(references)


def test_report_renders_for_a_crashed_run_without_charts_data(tmp_path: Path) -> None:
    path = good_dir(tmp_path, manifest={"status": "running"})
    (path / names.KPI).unlink()
    (path / names.HEARTBEAT).write_bytes(b"")
    page = render(analyze(path))
    assert "NO-GO" in page and "no heartbeat lines" in page


def verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("verify", *args, env=env, timeout=120)


def verify_in_process(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["verify", *args])
    return code, out.getvalue()


def test_verify_command_exit_codes_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTGRES_DSN", raising=False)
    code, out = verify_in_process(str(good_dir(tmp_path / "good")))
    assert code == 0, out
    assert "verdict: GO" in out
    assert (tmp_path / "good" / names.REPORT_HTML).is_file()

    code, out = verify_in_process(str(good_dir(tmp_path / "crashed", manifest={"status": "running"})))
    assert code == 1
    assert "verdict: NO-GO: failed manifest_status" in out


def test_verify_cli_expected_and_usage_errors_are_one_line(tmp_path: Path) -> None:
    missing = verify(str(tmp_path / "nope"))
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == f"arbitrage verify: evidence directory not found: {tmp_path / 'nope'}\n"
    usage = verify()
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1, usage.stderr


def test_verify_can_write_its_results_outside_the_evidence_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POSTGRES_DSN", raising=False)
    path = good_dir(tmp_path / "run")
    out = tmp_path / "out"
    code, shown = verify_in_process(str(path), "--output-dir", str(out))
    assert code == 0, shown
    assert (out / names.ANALYSIS_RESULT).is_file() and not (path / names.ANALYSIS_RESULT).exists()


def test_verify_window_errors_are_usage_errors_in_one_line(tmp_path: Path) -> None:
    path = good_dir(tmp_path / "run")
    unknown = verify(str(path), "--window", "winrate=60")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr == (
        "arbitrage verify: --window: unknown window 'winrate': expected one of alert_success, cpu,"
        " guard_triggers, loop_latency, round_trip_stagnation, win_rate\n"
    )
    malformed = verify(str(path), "--window", "win_rate")
    assert malformed.returncode == 2 and "expected NAME=SECONDS" in malformed.stderr, malformed.stderr
    assert not (path / names.ANALYSIS_RESULT).exists()
