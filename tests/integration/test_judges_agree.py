"""The harness assertions and `verify`'s analyzer reach the same verdict on damaged evidence.

One real run (the engine as a subprocess, on real embedded PostgreSQL and Redis) is judged good by
both; then each case copies its evidence, breaks one thing, and both judges look at the copy.
Where a case edits a document on purpose it reseals the manifest, so only the intended criterion
is hit; the cases that damage the seal itself do not.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arbitrage.services import ServiceEndpoints
from evidence import names
from evidence.documents import beat_epoch
from evidence.reader import read_json
from evidence.writer import atomic_write_json, file_digest
from gates.analyzer import analyze
from harness.assertions import (
    assert_db_invariant,
    assert_evidence_complete,
    assert_heartbeat_density,
    assert_wallclock,
)
from harness.cli_process import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DURATION_S = 8
"""Long enough that a gap cut out of it (all but the last second) exceeds the density limit, one
interval plus the 5 s slack, by a second."""
INTERVAL_S = 1.0


@dataclass(frozen=True)
class GoodRun:
    """The untouched evidence of the module's run and the database that holds its ledger."""

    evidence: Path
    dsn: str


@pytest.fixture(scope="module")
def good_run(server: ServiceEndpoints, tmp_path_factory: pytest.TempPathFactory) -> GoodRun:
    root = tmp_path_factory.mktemp("judges")
    done = run_cli(
        "run", "--duration", f"{DURATION_S}s", "--seed", "7", "--heartbeat-interval", str(INTERVAL_S),
        "--postgres-dsn", server.postgres_dsn, "--redis-url", server.redis_url,
        "--evidence-root", str(root / "evidence"), timeout=180, cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("evidence: ")]
    assert len(lines) == 1, done.stdout
    return GoodRun(Path(lines[0].removeprefix("evidence: ")), server.postgres_dsn)


# -- damage ------------------------------------------------------------------------------------------
def reseal(run: Path) -> None:
    """Re-digest every file the manifest lists, after a deliberate edit."""
    manifest = read_json(run / names.MANIFEST)
    manifest["files"] = {
        name: file_digest(run / name).to_json() for name in manifest["files"] if (run / name).is_file()
    }
    atomic_write_json(run / names.MANIFEST, manifest)


def edit_json(
    run: Path, name: str, change: Callable[[dict[str, Any]], object], *, sealed: bool = True
) -> None:
    document = read_json(run / name)
    change(document)
    atomic_write_json(run / name, document)
    if sealed:
        reseal(run)


def edit_beats(run: Path, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    path = run / names.HEARTBEAT
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in change(records)))
    reseal(run)


def only_start_and_stop(beats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [beats[0], beats[-1]]


def without_the_first_seconds(beats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start = beat_epoch(beats[0]) or 0.0
    return [beats[0], *(b for b in beats[1:] if (beat_epoch(b) or 0.0) > start + DURATION_S - 1)]


def set_at(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def add_to(path: tuple[str, ...], delta: int) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] += delta

    return change


def write_bytes(name: str, data: bytes) -> Callable[[Path], object]:
    return lambda run: (run / name).write_bytes(data)


def truncate(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])

    return damage


def corrupt_middle_beat(run: Path) -> None:
    path = run / names.HEARTBEAT
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][: len(lines[2]) // 2]
    path.write_bytes(b"\n".join(lines))
    reseal(run)


def torn_tail(run: Path) -> None:
    with (run / names.HEARTBEAT).open("ab") as handle:
        handle.write(b'{"timestamp": "2026-')
    reseal(run)


def half_the_expected_time(document: dict[str, Any]) -> None:
    document["duration_seconds"] = document["expected_duration_seconds"] / 2


DAMAGES: dict[str, Callable[[Path], object]] = {
    "untouched": lambda run: None,
    "missing kpi": lambda run: (run / names.KPI).unlink(),
    "missing heartbeat": lambda run: (run / names.HEARTBEAT).unlink(),
    "missing manifest": lambda run: (run / names.MANIFEST).unlink(),
    "missing chain summary": lambda run: (run / names.CHAIN_SUMMARY).unlink(),
    "empty chain summary": write_bytes(names.CHAIN_SUMMARY, b""),
    "truncated kpi json": truncate(names.KPI),
    "schema-invalid kpi": lambda run: edit_json(run, names.KPI, set_at(("db_counts", "db_inserts_ok"), -1)),
    "schema-invalid manifest": lambda run: edit_json(run, names.MANIFEST, set_at(("phase",), "canary")),
    "sha256 mismatch": lambda run: edit_json(run, names.KPI, add_to(("loop_count",), 1), sealed=False),
    "manifest still running": lambda run: edit_json(run, names.MANIFEST, set_at(("status",), "running")),
    "sealed file deleted": lambda run: (run / names.METRICS_SNAPSHOT).unlink(),
    "unsealed extra file": write_bytes("operator_notes.json", b"{}\n"),
    "heartbeat gap": lambda run: edit_beats(run, without_the_first_seconds),
    "heartbeat too sparse": lambda run: edit_beats(run, only_start_and_stop),
    "silent tail": lambda run: edit_json(run, names.CHAIN_SUMMARY, add_to(("run_ended_epoch",), 30)),
    "corrupt heartbeat line": corrupt_middle_beat,
    "torn heartbeat tail": torn_tail,
    "wallclock short": lambda run: edit_json(run, names.CHAIN_SUMMARY, half_the_expected_time),
    "db count mismatch": lambda run: edit_json(run, names.KPI, add_to(("db_counts", "db_inserts_ok"), 1)),
    "closed trades overstated": lambda run: edit_json(
        run, names.CHAIN_SUMMARY, add_to(("closed_trades",), 1)
    ),
    "legs claimed journaled": lambda run: edit_json(run, names.KPI, set_at(("ledger", "legs_pending"), 2)),
    "open position not in ledger": lambda run: edit_json(
        run, names.KPI, set_at(("open_positions",), [{"symbol": "BTC", "trade_id": "x", "reason": "test"}])
    ),
}


# -- the two judges ----------------------------------------------------------------------------------
def harness_verdict(check: Callable[[], object]) -> str:
    try:
        check()
    except AssertionError as exc:
        return "not applicable" if "not applicable" in str(exc) else "fail"
    return "pass"


def harness_verdicts(run: Path, dsn: str) -> dict[str, str]:
    return {
        "complete and sealed": harness_verdict(lambda: assert_evidence_complete(run)),
        "completeness": harness_verdict(lambda: assert_evidence_complete(run, sealed=False)),
        "wallclock": harness_verdict(lambda: assert_wallclock(run)),
        "heartbeat_density": harness_verdict(lambda: assert_heartbeat_density(run)),
        "ledger recount": harness_verdict(lambda: assert_db_invariant(run, dsn)),
    }


def verify_verdicts(run: Path, dsn: str) -> dict[str, str]:
    analysis = analyze(run, dsn, dsn_explicit=True)
    verdict = {c.name: c.verdict for c in analysis.criteria}
    sealed = verdict["completeness"] == "pass" and verdict["manifest_status"] == "pass"
    return {
        "complete and sealed": "pass" if sealed else "fail",
        "completeness": verdict["completeness"],
        "wallclock": verdict["wallclock"],
        "heartbeat_density": verdict["heartbeat_density"],
        "ledger recount": verdict["db_recount"],
    }


EXPECTED_FAILURES: dict[str, set[str]] = {
    "untouched": set(),
    "torn heartbeat tail": set(),
    "unsealed extra file": {"complete and sealed", "completeness"},
    "heartbeat gap": {"heartbeat_density"},
    "heartbeat too sparse": {"heartbeat_density"},
    "silent tail": {"heartbeat_density"},
    "wallclock short": {"wallclock"},
    "db count mismatch": {"ledger recount"},
    "closed trades overstated": {"ledger recount"},
    "legs claimed journaled": {"ledger recount"},
    "open position not in ledger": {"ledger recount"},
    "manifest still running": {"complete and sealed"},
}
"""Cases whose failing criteria are known exactly; the others must at least fail completeness."""


@pytest.fixture
def damaged(request: pytest.FixtureRequest, good_run: GoodRun, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / good_run.evidence.name
    shutil.copytree(good_run.evidence, copy)
    DAMAGES[request.param](copy)
    yield copy


def test_the_good_run_passes_both_judges(good_run: GoodRun) -> None:
    harness = harness_verdicts(good_run.evidence, good_run.dsn)
    verify = verify_verdicts(good_run.evidence, good_run.dsn)
    assert set(harness.values()) == {"pass"}, harness
    assert verify == harness
    assert analyze(good_run.evidence, good_run.dsn, dsn_explicit=True).verdict == "GO"


def test_there_are_at_least_fifteen_kinds_of_damage() -> None:
    assert len(DAMAGES) - 1 >= 15


@pytest.mark.parametrize("damaged", sorted(DAMAGES), indirect=True)
def test_harness_and_verify_agree_per_criterion(
    damaged: Path, good_run: GoodRun, request: pytest.FixtureRequest
) -> None:
    case = request.node.callspec.params["damaged"]
    harness = harness_verdicts(damaged, good_run.dsn)
    verify = verify_verdicts(damaged, good_run.dsn)
    assert harness == verify, f"{case}: harness {harness} != verify {verify}"
    failed = {name for name, verdict in harness.items() if verdict == "fail"}
    if case in EXPECTED_FAILURES:
        assert failed == EXPECTED_FAILURES[case], f"{case}: failed {failed}"
    else:
        assert "completeness" in failed, f"{case}: failed only {failed}"
