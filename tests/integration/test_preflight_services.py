"""Preflight end to end against real PostgreSQL and Redis: the kill switch gates live mode,
positions a crashed live run left open block it until reconciled, and `arbitrage preflight`
prints rows, writes JSON and exits 1 on a FAIL."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from arbitrage.config import AppConfig
from arbitrage.ledger import Ledger, LegRow, connect
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.ops.live_arm import ARM_ACK_VALUE, KEY_VARS
from arbitrage.ops.preflight import PreflightContext, PreflightReport, bootstrap_gate, run_preflight
from arbitrage.services import ServiceEndpoints
from arbitrage.sources import build_source
from harness.cli_process import run_cli
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration

CANARY = {name: f"CANARY-{name}-51d0e2" for name in KEY_VARS}


def armed_env() -> dict[str, str]:
    return {
        "LIVE_ARM_ACK": ARM_ACK_VALUE,
        "LIVE_ARM_AT": str(int(time.time())),
        "LIVE_MAX_NOTIONAL_USD": "50",
        "ARBITRAGE_ENV": "live",
        **CANARY,
    }


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    return fresh_database(server.postgres_dsn, "pf", with_schema=False)


def context(
    dsn: str, server: ServiceEndpoints, tmp_path: Path, mode: str, env: dict[str, str]
) -> PreflightContext:
    return PreflightContext(
        mode="live" if mode == "live" else "paper",
        env=env,
        postgres_dsn=dsn,
        redis_url=server.redis_url,
        market=lambda: build_source(AppConfig()),
        redis_key_prefix=f"pf{secrets.token_hex(3)}",
        repo_dir=tmp_path,
        disk_path=tmp_path,
    )


def preflight(
    dsn: str, server: ServiceEndpoints, tmp_path: Path, mode: str, env: dict[str, str]
) -> PreflightReport:
    return run_preflight(context(dsn, server, tmp_path, mode, env))


def statuses(report: PreflightReport) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


def test_paper_preflight_passes_on_a_fresh_system(
    ledger: Ledger, dsn: str, server: ServiceEndpoints, tmp_path: Path
) -> None:
    report = preflight(dsn, server, tmp_path, "paper", {})
    assert report.passed, report.to_json()
    warned = {"env_live_file", "env_secrets"}
    assert {name for name, status in statuses(report).items() if status != "PASS"} == warned
    assert list(statuses(report)) == [
        "live_arm", "postgres", "redis", "kill_switch", "open_positions", "other_engines", "market",
        "env_live_file", "env_secrets", "disk",
    ]  # fmt: skip


def test_live_preflight_needs_the_kill_switch_released(
    ledger: Ledger, dsn: str, server: ServiceEndpoints, tmp_path: Path
) -> None:
    report = preflight(dsn, server, tmp_path, "live", armed_env())
    assert [c.name for c in report.failures()] == ["kill_switch"]
    assert report.refusal() == (
        "preflight failed: kill_switch: ACTIVE (default: no kill switch state recorded); "
        "release it with: arbitrage kill-switch deactivate --reason TEXT --by NAME"
    )
    with connect(dsn, 5.0, 5000) as conn:
        KillSwitch(conn).deactivate("live rehearsal", "alice")
    released = preflight(dsn, server, tmp_path, "live", armed_env())
    assert released.passed, released.to_json()
    assert not any(secret in json.dumps(released.to_json()) for secret in CANARY.values())


def leg(run_id: str, trade_id: str, leg_name: str) -> LegRow:
    return LegRow(
        run_id=run_id, trade_id=trade_id, leg=leg_name, correlation_id=f"{run_id}:{trade_id}",
        symbol="BTC", direction="kimchi", qty=0.001, upbit_side="buy", upbit_vwap_krw=1.0, upbit_fee_krw=0.0,
        binance_side="sell", binance_vwap_usdt=1.0, binance_fee_usdt=0.0, krw_per_usdt=1380.0,
        premium_net_pct=3.0, pnl_krw=None, pnl_usd=None, reason="threshold", tick=1,
    )  # fmt: skip


def test_positions_left_open_by_a_crashed_live_run_block_until_reconciled(
    ledger: Ledger, dsn: str, server: ServiceEndpoints, tmp_path: Path
) -> None:
    with connect(dsn, 5.0, 5000) as conn:
        KillSwitch(conn).deactivate("live rehearsal", "alice")
    ledger.record_run_start("live_crashed", "smoke", "live", datetime.now(UTC), 7, None, "0" * 64)
    ledger.record_run_start("paper_crashed", "smoke", "paper", datetime.now(UTC), 7, None, "0" * 64)
    for run_id in ("live_crashed", "paper_crashed"):
        assert ledger.record_leg(leg(run_id, "T000001", "entry"))
        assert ledger.record_leg(leg(run_id, "T000002", "entry"))
        assert ledger.record_leg(leg(run_id, "T000002", "exit"))
    live = preflight(dsn, server, tmp_path, "live", armed_env())
    blocked = next(c for c in live.checks if c.name == "open_positions")
    assert blocked.status == "FAIL"
    assert blocked.detail.startswith(
        "1 live position(s) without an exit leg in 1 earlier run(s): live_crashed (1: BTC);"
    )
    paper = preflight(dsn, server, tmp_path, "paper", {})
    assert statuses(paper)["open_positions"] == "WARN" and paper.passed
    assert ledger.record_event("live_crashed", "POSITIONS_RECONCILED", {"by": "alice", "venues": "flat"})
    assert statuses(preflight(dsn, server, tmp_path, "live", armed_env()))["open_positions"] == "PASS"


def test_preflight_command_prints_rows_writes_json_and_exits_1_on_fail(
    ledger: Ledger, dsn: str, server: ServiceEndpoints, tmp_path: Path
) -> None:
    env = armed_env()
    output = tmp_path / "preflight.json"
    where = ["--postgres-dsn", dsn, "--redis-url", server.redis_url]
    done = run_cli(
        "preflight", "--mode", "live", "--output", str(output), *where, env=env, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("arbitrage: preflight failed: kill_switch: ACTIVE (default")
    assert done.stderr.count("\n") == 1
    assert [line.split()[0] for line in done.stdout.splitlines()] == [
        "PASS", "PASS", "PASS", "FAIL", "PASS", "PASS", "PASS", "WARN", "WARN", "PASS",
    ]  # fmt: skip
    written = json.loads(output.read_text())
    assert written["passed"] is False and written["mode"] == "live"
    for text in (done.stdout, done.stderr, output.read_text()):
        assert not any(secret in text for secret in CANARY.values())
    env["ARBITRAGE_ENV"] = "paper"
    paper = run_cli("preflight", *where, env=env, timeout=60, cwd=tmp_path)
    assert paper.returncode == 0, paper.stderr
    assert paper.stdout.splitlines()[-1] == "preflight: PASS (10 checks, mode paper)"


def test_the_gate_records_preflight_and_the_live_refusal(
    ledger: Ledger, dsn: str, server: ServiceEndpoints, tmp_path: Path
) -> None:
    recorded: list[tuple[str, dict[str, Any]]] = []

    def record(kind: str, payload: dict[str, Any]) -> None:
        recorded.append((kind, payload))

    assert bootstrap_gate(context(dsn, server, tmp_path, "paper", {}), record) is None
    assert [kind for kind, _ in recorded] == ["PREFLIGHT"] and recorded[0][1]["passed"] is True
    recorded.clear()
    refusal = bootstrap_gate(context(dsn, server, tmp_path, "live", armed_env()), record)
    assert refusal is not None and refusal.startswith(
        "live mode refused: preflight failed: kill_switch: ACTIVE"
    )
    assert [kind for kind, _ in recorded] == ["PREFLIGHT", "LIVE_REFUSED"]
    assert recorded[1][1] == {"reason": refusal.removeprefix("live mode refused: ")}
