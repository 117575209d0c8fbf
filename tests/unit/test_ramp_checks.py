"""D98 §2's phase checks on crafted evidence: each fails on the breach it names and passes just inside
its limit; a run without a profile gets no phase rows, and `verify` shows them for one with a profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arbitrage.profiles import PROFILE_NAMES
from evidence.documents import Manifest
from evidence.ramp_checks import judge_phase, profile_phase, split_exits
from evidence.run_facts import RunFacts, facts_from_documents, profile_of
from gates.analyzer import analyze
from tests.evidence_factory import STARTED_EPOCH, make_evidence_dir, make_manifest

START = 1_700_000_000.0


def event(at: float, kind: str, reason: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"tick": int(at * 2), "epoch": START + at, "event": kind, "symbol": "XRP"}
    if reason is not None:
        row["reason"] = reason
    return row


def facts(profile: str | None, events: list[dict[str, Any]] | None, **kpi: Any) -> RunFacts:
    manifest = {"config": {"run": {"profile": profile}}}
    summary = {"run_started_epoch": START, "run_ended_epoch": START + 300.0, "duration_seconds": 300.0}
    document: dict[str, Any] = {**kpi}
    if events is not None:
        document["trade_events"] = events
    return facts_from_documents(manifest, summary, document, [], "")


def outcomes(run: RunFacts) -> dict[str, str]:
    return {row.name: row.outcome for row in judge_phase(run)}


def test_profile_names_map_to_their_phase() -> None:
    assert [profile_phase(f"{m}-phase{n}") for m in ("live", "paper") for n in (1, 2, 3)] == [1, 2, 3] * 2
    assert profile_phase(None) is None
    assert profile_phase("live-phase4") is None
    assert profile_phase("phase1") is None


def test_a_run_without_a_profile_has_no_phase_checks() -> None:
    assert judge_phase(facts(None, [event(1, "entry")])) == []


def test_phase1_passes_an_entry_in_the_first_minute_and_a_strategy_exit_in_two() -> None:
    run = facts("paper-phase1", [event(60.0, "entry"), event(120.0, "exit", "threshold")])
    assert outcomes(run) == {"phase1_first_entry": "pass", "phase1_first_exit": "pass"}
    rows = {row.name: row for row in judge_phase(run)}
    assert rows["phase1_first_entry"].observed == 60.0
    assert rows["phase1_first_entry"].priority == "critical"


def test_phase1_fails_without_an_entry_in_the_first_minute() -> None:
    late = facts("live-phase1", [event(60.5, "entry"), event(90.0, "exit", "threshold")])
    assert outcomes(late)["phase1_first_entry"] == "fail"
    none = facts("live-phase1", [])
    assert outcomes(none) == {"phase1_first_entry": "fail", "phase1_first_exit": "fail"}
    assert "no entry" in judge_phase(none)[0].detail


def test_phase1_exit_must_be_the_strategys_within_two_minutes() -> None:
    flattened = facts("paper-phase1", [event(5.0, "entry"), event(90.0, "exit", "flatten")])
    assert outcomes(flattened)["phase1_first_exit"] == "fail"
    late = facts("paper-phase1", [event(5.0, "entry"), event(120.5, "exit", "max_hold")])
    assert outcomes(late)["phase1_first_exit"] == "fail"
    held_out = facts("paper-phase1", [event(5.0, "entry"), event(119.0, "exit", "max_hold")])
    assert outcomes(held_out)["phase1_first_exit"] == "pass"


def test_phase1_cannot_check_without_trade_events() -> None:
    rows = judge_phase(facts("paper-phase1", None))
    assert [row.outcome for row in rows] == ["fail", "fail"]
    assert all("cannot check" in row.detail for row in rows)


GOOD = {"closed_trades": 5, "wins": 3, "net_pnl_usd": -10.0, "loop_latency_ms": {"mean": 29.99}}


@pytest.mark.parametrize("profile", ["live-phase2", "paper-phase3"])
def test_phase2_goals_pass_at_their_limits(profile: str) -> None:
    prefix = f"phase{profile_phase(profile)}"
    assert outcomes(facts(profile, [], **GOOD)) == {
        f"{prefix}_round_trips": "pass",
        f"{prefix}_win_rate": "pass",
        f"{prefix}_net_pnl": "pass",
        f"{prefix}_loop_latency_mean": "pass",
    }


@pytest.mark.parametrize(
    ("breach", "failed"),
    [
        ({"closed_trades": 4, "wins": 4}, "phase2_round_trips"),
        ({"closed_trades": 10, "wins": 4}, "phase2_win_rate"),
        ({"net_pnl_usd": -10.01}, "phase2_net_pnl"),
        ({"loop_latency_ms": {"mean": 30.0}}, "phase2_loop_latency_mean"),
        ({"loop_latency_ms": {"p99": 1.0}}, "phase2_loop_latency_mean"),
    ],
)
def test_phase2_fails_each_goal_it_misses(breach: dict[str, Any], failed: str) -> None:
    result = outcomes(facts("paper-phase2", [], **{**GOOD, **breach}))
    assert [name for name, outcome in result.items() if outcome == "fail"] == [failed]


def test_phase2_win_rate_fails_without_round_trips() -> None:
    result = outcomes(facts("paper-phase2", [], **{**GOOD, "closed_trades": 0, "wins": 0}))
    assert result["phase2_win_rate"] == "fail"


def test_exits_split_into_strategy_and_closeout() -> None:
    split = split_exits({"threshold": 7, "max_hold": 1, "flatten": 2, "guard": 1})
    assert split == {"strategy_exits": 8, "closeout_exits": 3}
    assert split_exits(None) == {"strategy_exits": None, "closeout_exits": None}


def _profiled_dir(tmp_path: Path, profile: str | None, events: list[dict[str, Any]]) -> Path:
    config = {"run": {"profile": profile}}
    kpi = {"trade_events": [{**e, "epoch": e["epoch"] - START + STARTED_EPOCH} for e in events]}
    return make_evidence_dir(tmp_path / "run", manifest={"config": config}, kpi=kpi)


def test_verify_shows_the_phase_checks_and_a_missed_one_is_no_go(tmp_path: Path) -> None:
    good = analyze(
        _profiled_dir(tmp_path / "good", "paper-phase1", [event(2, "entry"), event(9, "exit", "threshold")])
    )
    assert good.criterion("phase1_first_entry").verdict == "pass"
    assert good.criterion("phase1_first_exit").verdict == "pass"
    assert good.kpis["profile"] == "paper-phase1"
    bad = analyze(_profiled_dir(tmp_path / "bad", "paper-phase1", [event(61, "entry")]))
    assert bad.failed == ["phase1_first_entry", "phase1_first_exit"]
    assert bad.verdict == "NO-GO" and bad.exit_code == 1


def test_verify_judges_a_run_without_a_profile_as_before(tmp_path: Path) -> None:
    plain = analyze(_profiled_dir(tmp_path, None, []))
    assert not [c.name for c in plain.criteria if c.name.startswith("phase")]
    assert plain.kpis["profile"] is None


def test_the_manifest_names_the_profile_and_older_manifests_still_read() -> None:
    for name in PROFILE_NAMES:
        assert Manifest.model_validate(make_manifest({"profile": name})).profile == name
    with pytest.raises(ValueError, match="profile"):
        Manifest.model_validate(make_manifest({"profile": "phase1"}))
    assert Manifest.model_validate(make_manifest({})).profile is None
    named = {"profile": "live-phase2", "config": {"run": {"profile": "live-phase2"}}}
    assert profile_of(named) == "live-phase2"
    assert profile_of({"config": {"run": {"profile": "paper-phase3"}}}) == "paper-phase3"
    assert profile_of({"profile": None, "config": {"run": {}}}) is None
