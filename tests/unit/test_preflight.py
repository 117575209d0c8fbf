"""Preflight checks one by one: git safety against real temp repositories, the dotenv secret
scanner, the run-registry liveness test against real processes, and the report itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arbitrage.config import AppConfig
from arbitrage.market.source import MarketSource
from arbitrage.ops.live_arm import ARM_ACK_VALUE
from arbitrage.ops.preflight import (
    PreflightCheck,
    PreflightContext,
    PreflightReport,
    bootstrap_gate,
    check_disk,
    check_env_live_file,
    check_live_arm,
    check_market,
    check_other_engines,
    check_postgres,
    check_redis,
    check_tracked_env_secrets,
    live_only,
)
from arbitrage.ops.secrets_scan import scan_dotenv
from arbitrage.sources import build_source
from tests.support.ports import refused_port

SECRET = "q9Zr4Kx2Lm8Vt6Pw3Ny7Bc5"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh git work tree whose .gitignore ignores `.env*` except the example, like this project's."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    (path / ".gitignore").write_text(".env*\n!.env.example\n")
    git(path, "add", ".gitignore")
    return path


# -- .env.live ---------------------------------------------------------------------------------
def test_untracked_ignored_env_live_passes(repo: Path) -> None:
    (repo / ".env.live").write_text(f"UPBIT_SECRET_KEY={SECRET}\n")
    check = check_env_live_file(repo)
    assert (check.status, check.detail) == ("PASS", ".env.live is untracked and git-ignored")


def test_env_live_not_ignored_fails(repo: Path) -> None:
    (repo / ".gitignore").write_text("logs/\n")
    check = check_env_live_file(repo)
    assert (check.status, check.detail) == ("FAIL", ".env.live is not git-ignored: add it to .gitignore")


def test_tracked_env_live_fails_even_when_ignored(repo: Path) -> None:
    (repo / "deploy").mkdir()
    (repo / "deploy" / ".env.live").write_text("ARBITRAGE_ENV=live\n")
    git(repo, "add", "-f", "deploy/.env.live")
    check = check_env_live_file(repo / "deploy")
    assert check.status == "FAIL"
    assert check.detail.startswith("deploy/.env.live is tracked by git")


def test_outside_git_is_a_warning_not_a_pass(tmp_path: Path) -> None:
    assert check_env_live_file(tmp_path).status == "WARN"
    assert check_tracked_env_secrets(tmp_path).status == "WARN"


# -- tracked .env* secrets ---------------------------------------------------------------------
def test_tracked_env_with_an_unquoted_secret_fails_naming_only_the_variable(repo: Path) -> None:
    (repo / ".env.example").write_text("UPBIT_ACCESS_KEY=<LIVE_KEY>\nBINANCE_API_KEY=\n")
    (repo / "config").mkdir()
    (repo / "config" / ".env").write_text(f"# keys\nARBITRAGE_ENV=paper\nBINANCE_API_SECRET={SECRET}\n")
    git(repo, "add", "-f", ".env.example", "config/.env")
    check = check_tracked_env_secrets(repo)
    assert check.status == "FAIL"
    assert "config/.env:3 BINANCE_API_SECRET (secret-named variable with a value)" in check.detail
    assert ".env.example" not in check.detail
    assert SECRET not in check.detail


def test_placeholder_only_example_passes(repo: Path) -> None:
    (repo / ".env.example").write_text("UPBIT_ACCESS_KEY=<LIVE_KEY>\nREDIS_URL=redis://localhost:6379/0\n")
    git(repo, "add", ".env.example")
    check = check_tracked_env_secrets(repo)
    assert (check.status, check.detail) == ("PASS", "1 tracked .env* file(s), no secret values")


def test_a_staged_secret_fails_even_after_the_working_copy_is_cleaned(repo: Path) -> None:
    example = repo / ".env.example"
    example.write_text(f"TELEGRAM_BOT_TOKEN={SECRET}\n")
    git(repo, "add", ".env.example")
    example.write_text("TELEGRAM_BOT_TOKEN=\n")
    check = check_tracked_env_secrets(repo)
    assert check.status == "FAIL"
    assert ".env.example:1 TELEGRAM_BOT_TOKEN" in check.detail


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (f"UPBIT_SECRET_KEY={SECRET}", "secret-named variable with a value"),
        (f'export BINANCE_API_KEY="{SECRET}"', "secret-named variable with a value"),
        (f"DB_PASSWORD='{SECRET}' # prod", "secret-named variable with a value"),
        ("POSTGRES_DSN=postgresql://arb:hunter2@db:5432/arb", "connection string with a password"),
        ("PG=host=db user=arb password=hunter2", "connection string with a password"),
        (f"OPAQUE={SECRET}", "high-entropy value"),
    ],
)
def test_scanner_finds_secrets_quoted_or_not(line: str, why: str) -> None:
    findings = scan_dotenv(f"# header\n{line}\n", ".env")
    assert [(f.line, f.why) for f in findings] == [(2, why)]
    assert "hunter2" not in findings[0].describe() and SECRET not in findings[0].describe()


@pytest.mark.parametrize(
    "line",
    [
        "UPBIT_ACCESS_KEY=",
        "UPBIT_ACCESS_KEY=<LIVE_KEY>",
        "EXECUTION_JWT_SECRET=your-secret-key-here",
        "BINANCE_API_SECRET=${BINANCE_API_SECRET}",
        "API_KEY=changeme",
        "TOKEN_TTL=3600",
        "AUTH_ENABLED=true",
        "REDIS_URL=redis://localhost:6379/0",
        "POSTGRES_DSN=postgresql://arb:<password>@db/arb",
        "ARBITRAGE_ENV=live",
        f"# UPBIT_SECRET_KEY={SECRET}",
    ],
)
def test_scanner_ignores_placeholders_settings_and_comments(line: str) -> None:
    assert scan_dotenv(line + "\n", ".env.example") == []


# -- arming, downgrade, disk, report -----------------------------------------------------------
def test_live_arm_row_is_required_only_in_live_mode() -> None:
    now = time.time()
    assert check_live_arm("paper", {}, now).status == "PASS"
    refused = check_live_arm("live", {"LIVE_ARM_ACK": ARM_ACK_VALUE.lower()}, now)
    assert refused.status == "FAIL" and "(case-sensitive)" in refused.detail


def test_live_only_failures_are_warnings_in_paper_mode() -> None:
    failed = PreflightCheck("other_engines", "FAIL", "1 engine(s) alive")
    assert live_only("live", failed) == failed
    assert live_only("paper", failed) == PreflightCheck(
        "other_engines", "WARN", "1 engine(s) alive (not blocking in paper mode)"
    )
    passed = PreflightCheck("x", "PASS", "ok")
    assert live_only("paper", passed) is passed


def test_disk_check_compares_free_space_with_the_minimum(tmp_path: Path) -> None:
    assert check_disk(tmp_path / "not" / "yet", 1.0).status == "PASS"
    short = check_disk(tmp_path, 1e12)
    assert short.status == "FAIL" and "need 1000000000000 MB" in short.detail


def test_report_passes_only_without_fail_rows_and_writes_json(tmp_path: Path) -> None:
    report = PreflightReport(
        "live", [PreflightCheck("a", "PASS", "fine"), PreflightCheck("b", "WARN", "meh")]
    )
    assert (report.passed, report.refusal()) == (True, None)
    report.checks.append(PreflightCheck("c", "FAIL", "broken"))
    report.checks.append(PreflightCheck("d", "FAIL", "also broken"))
    assert (report.passed, report.refusal()) == (False, "preflight failed: c: broken")
    target = tmp_path / "out" / "preflight.json"
    report.write(target)
    written = json.loads(target.read_text())
    assert written["passed"] is False and written["mode"] == "live"
    assert [c["status"] for c in written["checks"]] == ["PASS", "WARN", "FAIL", "FAIL"]
    assert list(target.parent.iterdir()) == [target]


# -- services, market, registry ----------------------------------------------------------------
def test_unreachable_postgres_and_redis_fail_fast() -> None:
    started = time.monotonic()
    pg, conn = check_postgres(f"postgresql://u@127.0.0.1:{refused_port()}/db", 2.0, 1000)
    redis_row, registry = check_redis(f"redis://127.0.0.1:{refused_port()}/0", "arb", 1.0)
    assert time.monotonic() - started < 8.0
    assert (pg.status, conn, redis_row.status, registry) == ("FAIL", None, "FAIL", None)
    assert "unreachable at 127.0.0.1" in pg.detail
    assert "redis unreachable at redis://127.0.0.1" in redis_row.detail


def synthetic() -> MarketSource:
    return build_source(AppConfig())


def test_market_check_takes_one_snapshot_from_a_fresh_source() -> None:
    check = check_market(synthetic, 5000)
    assert (check.status, check.detail) == ("PASS", "synthetic: 10 symbol(s) with usable books")
    assert check_market(None, 5000).status == "WARN"


def test_a_source_that_cannot_start_fails_the_market_check() -> None:
    def broken() -> MarketSource:
        raise ConnectionError("exchange unreachable\nsecond line")

    assert check_market(broken, 5000) == PreflightCheck(
        "market", "FAIL", "market source unhealthy: exchange unreachable"
    )


def test_stale_books_fail_the_market_check() -> None:
    check = check_market(synthetic, -1)
    assert check.status == "FAIL" and "KRW-USDT book is stale" in check.detail


@pytest.fixture
def other_engine() -> Iterator[subprocess.Popen[bytes]]:
    """A real process standing in for another engine's pid."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child
    child.kill()
    child.wait(timeout=10)


def entry(pid: int, started: float, status: str = "running") -> dict[str, str]:
    return {"status": status, "pid": str(pid), "started_at": datetime.fromtimestamp(started, UTC).isoformat()}


def test_a_live_engine_in_the_registry_blocks_live_and_warns_in_paper(
    other_engine: subprocess.Popen[bytes],
) -> None:
    registry = {"smoke_x": entry(other_engine.pid, time.time() + 1)}
    live = check_other_engines("live", registry, own_pid=1)
    assert (live.status, live.detail) == ("FAIL", f"1 engine(s) alive: smoke_x (pid {other_engine.pid})")
    assert check_other_engines("paper", registry, own_pid=1).status == "WARN"


def test_own_ended_dead_and_reused_pids_are_not_other_engines(other_engine: subprocess.Popen[bytes]) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=30)
    registry = {
        "own": entry(other_engine.pid, time.time()),
        "ended": entry(other_engine.pid, time.time(), status="ended"),
        "crashed": entry(dead.pid, time.time()),
        "reused_pid": entry(other_engine.pid, time.time() - 3600),
        "garbage": {"status": "running", "pid": "nope"},
    }
    check = check_other_engines("live", registry, own_pid=other_engine.pid)
    assert check.status == "PASS"
    registry.pop("own")
    check = check_other_engines("live", registry, own_pid=1)
    assert check.status == "PASS", check.detail
    assert "3 registry entries marked running whose process is gone" in check.detail
    assert check_other_engines("live", None, own_pid=1).status == "FAIL"


def test_the_gate_refuses_a_disarmed_live_run_before_touching_any_service() -> None:
    recorded: list[tuple[str, dict[str, object]]] = []
    context = PreflightContext(
        mode="live",
        env={"LIVE_ARM_ACK": ARM_ACK_VALUE, "LIVE_ARM_AT": "soon"},
        postgres_dsn=f"postgresql://u@127.0.0.1:{refused_port()}/db",
        redis_url=f"redis://127.0.0.1:{refused_port()}/0",
        market=synthetic,
    )
    refusal = bootstrap_gate(context, lambda kind, payload: recorded.append((kind, payload)))
    assert refusal == "live mode refused: LIVE_ARM_AT='soon' is not an integer of unix epoch seconds"
    assert [(kind, payload["code"]) for kind, payload in recorded] == [
        ("LIVE_ARM_REFUSED", "ARM_AT_MALFORMED")
    ]


def test_a_git_that_cannot_answer_fails_instead_of_passing(repo: Path) -> None:
    (repo / ".git" / "index").write_bytes(b"not an index")
    secrets_row = check_tracked_env_secrets(repo)
    live_row = check_env_live_file(repo)
    assert (secrets_row.status, live_row.status) == ("FAIL", "FAIL")
    assert secrets_row.detail.startswith("cannot inspect git, so tracked .env* files are unchecked: ")
    assert live_row.detail.startswith("cannot inspect git, so .env.live safety is unproven: ")
