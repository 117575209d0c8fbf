"""`arbitrage chaos` from the outside: the printed schedule, usage errors, the campaign's outputs
(with a crafted runner in place of the real one) and merging shard reports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from arbitrage.cli import build_parser, main
from gates.chaos.model import ORDER_FAULTS, ChaosOptions, Classification
from gates.chaos.schedule import build_schedule
from gates.chaos_command import run_chaos
from harness.cli_process import run_cli
from tests.support.chaos_outcomes import crafted_runner


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("chaos", *args, cwd=cwd, timeout=60)


def test_dry_run_is_byte_identical_for_one_seed_and_differs_across_seeds() -> None:
    first = _cli("--dry-run", "--runs", "25", "--seed", "9")
    second = _cli("--dry-run", "--runs", "25", "--seed", "9")
    other = _cli("--dry-run", "--runs", "25", "--seed", "10")
    assert first.returncode == second.returncode == other.returncode == 0
    assert first.stdout == second.stdout
    assert first.stdout != other.stdout
    lines = first.stdout.splitlines()
    assert lines[0] == "chaos schedule: seed=9 runs=25 duration=10s faults=all"
    assert lines[1:] == [plan.line() for plan in build_schedule(9, 25, 10.0).runs]


def test_the_launch_clock_is_named_in_the_header_and_keeps_the_schedule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["chaos", "--dry-run", "--runs", "4", "--seed", "2"]
    assert main([*common, "--clock", "launch"]) == 0
    launch = capsys.readouterr().out.splitlines()
    assert main(common) == 0
    run = capsys.readouterr().out.splitlines()
    assert launch[0] == "chaos schedule: seed=2 runs=4 duration=10s faults=all clock=launch"
    assert launch[0] == f"{run[0]} clock=launch" and launch[1:] == run[1:]
    with pytest.raises(SystemExit) as refused:
        main([*common, "--clock", "boot"])
    assert refused.value.code == 2
    assert "argument --clock: invalid choice: 'boot' (choose from 'run', 'launch')" in capsys.readouterr().err


def test_a_live_dry_run_names_its_mode_and_plans_order_faults(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["chaos", "--dry-run", "--runs", "5", "--seed", "2", "--mode", "live", "--faults", "orders"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "chaos schedule: seed=2 runs=5 duration=10s mode=live faults=orders"
    assert lines[1:] == [plan.line() for plan in build_schedule(2, 5, 10.0, ORDER_FAULTS).runs]


def test_only_prints_plan_k_of_the_same_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    common = ["chaos", "--dry-run", "--runs", "12", "--seed", "3"]
    assert main([*common, "--duration", "1m", "--faults", "pg,sigkill", "--only", "7"]) == 0
    only = capsys.readouterr().out.splitlines()
    assert main([*common, "--duration", "60s", "--faults", "sigkill,pg"]) == 0
    full = capsys.readouterr().out.splitlines()
    assert only == [f"{full[0]} only=7", full[1 + 7]]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--runs", "0"], 2, "invalid run count '0'"),
        (["--seed", "x"], 2, "invalid seed 'x'"),
        (["--faults", "bogus"], 2, "unknown fault kind 'bogus'"),
        (["--faults", "orders"], 2, "argument --faults: unknown fault kind 'orders' for a paper campaign"),
        (["--runs", "5", "--only", "5"], 2, "run 5 is beyond the schedule: expected 0..4"),
        (["--shard", "3/2"], 2, "invalid shard '3/2'"),
        (["--workers", "0"], 2, "invalid worker count '0'"),
        (["--duration", "2s"], 2, "too short"),
        (["--only", "1", "--shard", "1/2"], 2, "not allowed with argument"),
        (["--merge", "a.json", "--seed", "2"], 2, "--merge: not allowed with --seed"),
        (
            ["--postgres-dsn", "postgresql://chaos@127.0.0.1:1/chaos"],
            1,
            "postgres unreachable at 127.0.0.1:1",
        ),
        (["--merge", "missing.json"], 1, "cannot read chaos report missing.json"),
    ],
)
def test_bad_input_is_one_line_with_the_right_exit_code(
    args: list[str], code: int, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    returned: int | str | None
    try:
        returned = main(["chaos", *args, "--output-root", str(tmp_path / "out")])
    except SystemExit as exit_info:
        returned = exit_info.code
    captured = capsys.readouterr()
    assert returned == code, captured.err
    assert captured.err.count("\n") == 1, captured.err
    assert fragment in captured.err
    assert captured.out == ""
    assert not (tmp_path / "out").exists()


def test_bad_input_from_the_real_entry_point_has_no_traceback(tmp_path: Path) -> None:
    for args, code in ((["--seed", "x"], 2), (["--postgres-dsn", "postgresql://chaos@127.0.0.1:1/chaos"], 1)):
        done = _cli(*args, "--output-root", str(tmp_path / "out"))
        assert done.returncode == code, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def _campaign(tmp_path: Path, classes: dict[int, Classification], *args: str) -> tuple[int, Path]:
    seen: list[ChaosOptions] = []
    parsed = build_parser().parse_args(["chaos", "--output-root", str(tmp_path), "--seed", "5", *args])
    code = run_chaos(parsed, runner=crafted_runner(classes, seen))
    (options,) = seen
    return code, options.output_root


def test_campaign_writes_both_reports_and_ends_with_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, directory = _campaign(tmp_path, {2: "LOST", 5: "failed-closed"}, "--runs", "6", "--workers", "2")
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert directory.parent == tmp_path
    assert directory.name.startswith("chaos_") and directory.name.endswith("_s5")
    report = json.loads((directory / "chaos_report.json").read_text(encoding="utf-8"))
    plans = build_schedule(5, 6, 10.0).runs
    faults = sum(len(p.faults) for p in plans)
    assert out[-1] == f"chaos: 6 runs, {faults} faults, lost 1, unexplained 0"
    assert "  replay: arbitrage chaos --seed 5 --runs 6 --duration 10s --only 2" in out
    assert sum(line.startswith("run 000") for line in out) == 6
    assert report["options"]["workers"] == 2
    assert (
        report["outcomes"][2]["replay_command"] == "arbitrage chaos --seed 5 --runs 6 --duration 10s --only 2"
    )
    assert (directory / "chaos.html").read_text(encoding="utf-8").count('<svg class="timeline"') == 6


def test_clean_campaign_exits_zero_and_only_runs_plan_k(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, directory = _campaign(tmp_path, {}, "--runs", "9", "--only", "4", "--faults", "redis")
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    report = json.loads((directory / "chaos_report.json").read_text(encoding="utf-8"))
    assert report["schedule"] == [
        build_schedule(5, 9, 10.0, ("redis-freeze", "redis-kill", "redis-net-blackhole")).runs[4].line()
    ]
    assert out[-1].startswith("chaos: 1 runs, ") and out[-1].endswith("lost 0, unexplained 0")


def test_shard_reports_merge_into_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths, codes = [], []
    for i in (1, 2):
        code, directory = _campaign(
            tmp_path / "shards", {3: "UNEXPLAINED"}, "--runs", "7", "--shard", f"{i}/2"
        )
        paths.append(directory / "chaos_report.json")
        codes.append(code)
    assert codes == [0, 1]
    capsys.readouterr()
    done = _cli("--merge", *map(str, paths), "--output-root", str(tmp_path / "merged"))
    assert done.returncode == 1, done.stderr
    faults = sum(len(p.faults) for p in build_schedule(5, 7, 10.0).runs)
    assert done.stdout.splitlines()[-1] == f"chaos: 7 runs, {faults} faults, lost 0, unexplained 1"
    assert "replay: arbitrage chaos --seed 5 --runs 7 --duration 10s --only 3" in done.stdout
    (merged_dir,) = (tmp_path / "merged").iterdir()
    merged = json.loads((merged_dir / "chaos_report.json").read_text(encoding="utf-8"))
    assert [o["index"] for o in merged["outcomes"]] == list(range(7))
    assert (merged_dir / "chaos.html").read_text(encoding="utf-8").count('<svg class="timeline"') == 7
