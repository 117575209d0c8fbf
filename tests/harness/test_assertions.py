"""Each invariant assertion passes on good evidence and fails, with numbers, on a crafted bad one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evidence.names import HEARTBEAT, KPI
from harness.assertions import (
    assert_evidence_complete,
    assert_heartbeat_density,
    assert_memory_growth,
    assert_no_dead_letters,
    assert_wallclock,
)
from tests.evidence_factory import make_evidence_dir, make_heartbeats

TIMED = {"expected_duration_seconds": 70.0}
"""The factory's run lasts 70 s; give it a duration bound so wallclock applies."""


def test_good_evidence_passes_every_file_level_assertion(tmp_path: Path) -> None:
    good = make_evidence_dir(tmp_path / "good", chain_summary=TIMED)
    assert assert_evidence_complete(good).passed
    assert assert_wallclock(good).observed == 0.0
    assert assert_heartbeat_density(good).observed == 10.0


def test_wallclock_fails_on_a_run_that_overran(tmp_path: Path) -> None:
    bad = make_evidence_dir(tmp_path / "overran", chain_summary={"expected_duration_seconds": 60.0})
    with pytest.raises(AssertionError) as failure:
        assert_wallclock(bad)
    assert "ran 70.0s vs expected 60.0s: off by 10.0s > limit 3.0s (5%)" in str(failure.value)


def test_wallclock_refuses_a_tick_bounded_run(tmp_path: Path) -> None:
    ticks = make_evidence_dir(tmp_path / "ticks")
    with pytest.raises(AssertionError, match=r"not applicable .* tick-bounded \(ran 70\.0s"):
        assert_wallclock(ticks)


def test_heartbeat_density_fails_on_a_gap(tmp_path: Path) -> None:
    beats = [line for line in make_heartbeats() if line["seq"] not in (2, 3)]
    bad = make_evidence_dir(tmp_path / "gap", heartbeats=beats)
    assert_evidence_complete(bad)
    with pytest.raises(AssertionError) as failure:
        assert_heartbeat_density(bad)
    message = str(failure.value)
    assert "max heartbeat gap 30.0s > limit 15.0s (interval 10s + 5s)" in message
    assert "between beat seq 1 (+10.0s) and beat seq 4 (+40.0s)" in message
    assert "6 beats over 70.0s" in message


def test_heartbeat_density_counts_the_silence_before_the_first_beat(tmp_path: Path) -> None:
    late = make_heartbeats()[2:]
    bad = make_evidence_dir(tmp_path / "late_start", heartbeats=late)
    with pytest.raises(AssertionError, match=r"max heartbeat gap 20\.0s > limit 15\.0s.*between run start"):
        assert_heartbeat_density(bad)


def test_completeness_fails_on_a_tampered_file(tmp_path: Path) -> None:
    bad = make_evidence_dir(tmp_path / "tampered")
    kpi = json.loads((bad / KPI).read_text())
    kpi["closed_trades"] = 99
    (bad / KPI).write_text(json.dumps(kpi))
    with pytest.raises(AssertionError) as failure:
        assert_evidence_complete(bad)
    message = str(failure.value)
    assert "3/4 files ok: kpi.json: sha256 mismatch with manifest" in message
    assert "(need 4/4)" in message


def test_completeness_fails_on_a_missing_file(tmp_path: Path) -> None:
    bad = make_evidence_dir(tmp_path / "missing")
    (bad / HEARTBEAT).unlink()
    with pytest.raises(AssertionError, match=r"3/4 files ok: heartbeat.jsonl: missing \(need 4/4\)"):
        assert_evidence_complete(bad)


def test_completeness_fails_on_a_manifest_still_running(tmp_path: Path) -> None:
    crashed = make_evidence_dir(tmp_path / "crashed", manifest={"status": "running"})
    with pytest.raises(
        AssertionError, match=r"manifest status 'running': the engine never reached its final flush"
    ):
        assert_evidence_complete(crashed)
    assert assert_evidence_complete(crashed, sealed=False).passed


ALERTS_OK = {"notifier_available": True, "sent_count": 2, "dlq_count": 0, "retry_count": 0}


def test_no_dead_letters_passes_with_an_empty_dlq_and_fails_on_one(tmp_path: Path) -> None:
    good = make_evidence_dir(tmp_path / "good", kpi={"alerts": ALERTS_OK})
    assert assert_no_dead_letters(good) == 0
    bad = make_evidence_dir(tmp_path / "bad", kpi={"alerts": {**ALERTS_OK, "dlq_count": 2, "retry_count": 4}})
    with pytest.raises(AssertionError, match=r"alerts: 2 alert\(s\) of run .* reached the DLQ \(limit 0\)"):
        assert_no_dead_letters(bad)


def test_memory_growth_fails_when_the_soak_exceeded_its_limit(tmp_path: Path) -> None:
    growth = {"pct_per_hour": 1.5, "mb_per_hour": 1.0, "samples": 109, "limit_pct_per_hour": 10.0}
    good = make_evidence_dir(
        tmp_path / "good", kpi={"resources": {"rss_growth": {**growth, "exceeded": False}}}
    )
    assert assert_memory_growth(good)["pct_per_hour"] == 1.5
    leaking = {**growth, "pct_per_hour": 42.0, "mb_per_hour": 30.0, "exceeded": True}
    bad = make_evidence_dir(tmp_path / "bad", kpi={"resources": {"rss_growth": leaking}})
    with pytest.raises(AssertionError, match=r"42\.0 %/h \(30\.0 MB/h over 109 samples\) > limit 10\.0 %/h"):
        assert_memory_growth(bad)
