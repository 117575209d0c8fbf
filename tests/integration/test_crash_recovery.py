"""Crash recovery against real PostgreSQL and Redis: a SIGKILLed engine's run is found by the next
start, marked `crashed`, and its paper positions settled; live positions and live owners are left
alone; two engines recovering at once settle each run once. Every assertion reads PostgreSQL."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from arbitrage.config import AppConfig
from arbitrage.ledger import Ledger, LegRow, connect
from arbitrage.market.book import MarketSnapshot
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.ops.live_arm import ARM_ACK_VALUE, KEY_VARS
from arbitrage.recovery import RecoveryReport, recover_crashed_runs
from arbitrage.services import ServiceEndpoints
from arbitrage.sources import one_snapshot
from harness.cli_process import KEY_PREFIX_VAR, run_cli, start_cli
from tests.support.databases import fresh_database
from tests.support.engine_process import wait_for

pytestmark = pytest.mark.integration

DEADLINE_SEC = 60.0


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    return fresh_database(server.postgres_dsn, "cr")


def engine_env(**extra: str) -> dict[str, str]:
    """Changes to the operator's environment: a Redis key prefix of the command's own, and `extra`."""
    return {KEY_PREFIX_VAR: f"cr{secrets.token_hex(3)}", **extra}


def rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with connect(dsn, 5.0, 5000) as conn:
        return conn.execute(sql, params).fetchall()


def open_entries(dsn: str, run_id: str) -> int:
    found = rows(
        dsn,
        "SELECT count(*) FROM trade_legs e WHERE e.run_id = %s AND e.leg = 'entry' AND NOT EXISTS"
        " (SELECT 1 FROM trade_legs x"
        "  WHERE x.run_id = e.run_id AND x.trade_id = e.trade_id AND x.leg = 'exit')",
        run_id,
    )
    return int(found[0][0])


def journaled_open_entries(evidence_root: Path, run_id: str) -> int:
    """Positions the killed run opened by its own journal, read as plain JSON lines: a kill between
    the journal write and the PostgreSQL commit leaves legs only the journal holds, which the next
    start replays before it settles the run."""
    (journal,) = evidence_root.rglob(f"{run_id}/ledger_journal.jsonl")
    legs = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line]
    legs = [record["row"] for record in legs if record["op"] == "leg"]
    entries = {record["trade_id"] for record in legs if record["leg"] == "entry"}
    return len(entries - {record["trade_id"] for record in legs if record["leg"] == "exit"})


def wait_for_open_entry(dsn: str, engine: subprocess.Popen[bytes]) -> str:
    """The engine's run id, once one of its entry legs without an exit leg is in PostgreSQL."""

    def open_entry_run() -> str | None:
        assert engine.poll() is None, f"engine exited early with {engine.returncode}"
        found = rows(dsn, "SELECT run_id FROM runs WHERE status = 'running' AND pid = %s", engine.pid)
        return str(found[0][0]) if found and open_entries(dsn, found[0][0]) > 0 else None

    return wait_for(open_entry_run, DEADLINE_SEC, "an open entry leg in PostgreSQL")


def test_the_next_start_recovers_a_sigkilled_run(dsn: str, server: ServiceEndpoints, tmp_path: Path) -> None:
    services = ["--postgres-dsn", dsn, "--redis-url", server.redis_url]
    evidence = ["--evidence-root", str(tmp_path / "evidence")]
    always_enter = engine_env(
        ARB_STRATEGY__ENTRY_THRESHOLD_PCT="-10", ARB_STRATEGY__EXIT_THRESHOLD_PCT="-40",
        ARB_STRATEGY__MAX_HOLD_SEC="3600",
    )  # fmt: skip
    killed: subprocess.Popen[bytes] = start_cli(
        "run", "--duration", "120s", *evidence, *services,
        env=always_enter, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        old_run = wait_for_open_entry(dsn, killed)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
    committed_open = open_entries(dsn, old_run)
    left_open = journaled_open_entries(tmp_path / "evidence", old_run)
    assert 0 < committed_open <= left_open
    assert rows(dsn, "SELECT status FROM runs WHERE run_id = %s", old_run) == [("running",)]

    started = time.monotonic()
    done = run_cli("run", "--ticks", "5", *evidence, *services, env=engine_env(), timeout=120, cwd=tmp_path)
    elapsed = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    naming = [line for line in done.stderr.splitlines() if old_run in line]
    replayed = [line for line in naming if "replayed the ledger journal" in line]
    assert len(replayed) <= 1 and (replayed or left_open == committed_open), done.stderr
    assert naming[len(replayed) :] == [
        f"arbitrage: recovered crashed run {old_run} (pid {killed.pid}): "
        f"settled {left_open} open positions with recovery legs"
    ], done.stderr
    assert rows(
        dsn, "SELECT status, stop_reason, ended_at IS NOT NULL FROM runs WHERE run_id = %s", old_run
    ) == [("crashed", "CRASHED", True)]
    crashed = rows(
        dsn, "SELECT payload FROM event_log WHERE run_id = %s AND event_type = 'RUN_CRASHED'", old_run
    )
    assert len(crashed) == 1
    assert crashed[0][0]["pid"] == killed.pid and crashed[0][0]["host"] == socket.gethostname()
    assert crashed[0][0]["open_legs"] == left_open
    assert open_entries(dsn, old_run) == 0
    entries = rows(dsn, "SELECT count(*) FROM trade_legs WHERE run_id = %s AND leg = 'entry'", old_run)[0][0]
    recovered = rows(
        dsn,
        "SELECT count(*), count(pnl_usd) FROM trade_legs WHERE run_id = %s AND leg = 'exit'"
        " AND reason = 'recovery'",
        old_run,
    )
    assert recovered == [(left_open, left_open)] and left_open == entries
    exit_events = rows(
        dsn, "SELECT count(*) FROM event_log WHERE run_id = %s AND event_type = 'RECOVERY_EXIT'", old_run
    )
    assert exit_events == [(left_open,)]
    new_runs = rows(dsn, "SELECT status FROM runs WHERE run_id <> %s", old_run)
    assert new_runs == [("ended",)], f"second run took {elapsed:.1f} s"

    again = run_cli("preflight", *services, env=engine_env(), timeout=60, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert old_run not in again.stderr, "a settled run was recovered twice"


def dead_owner() -> tuple[int, float]:
    """The pid and start time of a process that has since exited: an owner that is gone."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    created = psutil.Process(child.pid).create_time()
    child.kill()
    child.wait(timeout=30)
    return child.pid, created


def insert_run(dsn: str, run_id: str, mode: str, owner: tuple[int, str, float]) -> None:
    with connect(dsn, 5.0, 5000) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, phase, mode, started_at, status, seed, config_hash, schema_version,"
            " pid, host, process_started) VALUES (%s, 'smoke', %s, %s, 'running', 7, %s, 3, %s, %s, %s)",
            (run_id, mode, datetime.now(UTC), "0" * 64, *owner),
        )


def entry(run_id: str, trade_id: str, symbol: str = "BTC") -> LegRow:
    return LegRow(
        run_id=run_id, trade_id=trade_id, leg="entry", correlation_id=f"{run_id}:{trade_id}", symbol=symbol,
        direction="upbit_rich", qty=0.001, upbit_side="sell", upbit_vwap_krw=140_000_000.0,
        upbit_fee_krw=70.0, binance_side="buy", binance_vwap_usdt=100_000.0, binance_fee_usdt=0.1,
        krw_per_usdt=1380.0, premium_net_pct=1.2, pnl_krw=None, pnl_usd=None, reason="threshold", tick=3,
    )  # fmt: skip


def test_a_crashed_live_run_is_marked_but_its_positions_are_left_and_block_arming(
    ledger: Ledger, dsn: str, server: ServiceEndpoints, tmp_path: Path
) -> None:
    pid, created = dead_owner()
    insert_run(dsn, "live_dead", "live", (pid, socket.gethostname(), created))
    assert ledger.record_leg(entry("live_dead", "T000001", "BTC"))
    assert ledger.record_leg(entry("live_dead", "T000002", "ETH"))
    with connect(dsn, 5.0, 5000) as conn:
        KillSwitch(conn).deactivate("crash recovery test", "pytest")
    env = engine_env(
        LIVE_ARM_ACK=ARM_ACK_VALUE, LIVE_ARM_AT=str(int(time.time())), LIVE_MAX_NOTIONAL_USD="50",
        ARBITRAGE_ENV="live", **{name: f"CANARY-{name}" for name in KEY_VARS},
    )  # fmt: skip
    done = run_cli(
        "preflight", "--mode", "live", "--postgres-dsn", dsn, "--redis-url", server.redis_url,
        env=env, timeout=60, cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"arbitrage: recovered crashed run live_dead (pid {pid}): live, left 2 open positions untouched"
        " (BTC, ETH); live arming is refused until they are reconciled on the exchanges and"
        " POSITIONS_RECONCILED is recorded",
        "arbitrage: preflight failed: open_positions: 2 live position(s) without an exit leg in 1 earlier"
        " run(s): live_dead (2: BTC, ETH); reconcile on the exchanges, then record POSITIONS_RECONCILED"
        " for each run in event_log",
    ]
    assert rows(dsn, "SELECT status FROM runs WHERE run_id = 'live_dead'") == [("crashed",)]
    assert rows(dsn, "SELECT count(*) FROM event_log WHERE event_type = 'RUN_CRASHED'") == [(1,)]
    assert rows(dsn, "SELECT count(*) FROM trade_legs WHERE leg = 'exit'") == [(0,)]
    assert rows(dsn, "SELECT count(*) FROM event_log WHERE event_type = 'RECOVERY_EXIT'") == [(0,)]


def recover(dsn: str, provider: Any = None) -> RecoveryReport:
    config = AppConfig()
    snapshot = provider if provider is not None else (lambda: one_snapshot(config))
    with connect(dsn, 5.0, 5000) as conn:
        return recover_crashed_runs(conn, config.strategy, config.run.seed, snapshot)


def test_runs_whose_owner_is_alive_or_on_another_host_are_left_alone(ledger: Ledger, dsn: str) -> None:
    me = (os.getpid(), socket.gethostname(), psutil.Process().create_time())
    insert_run(dsn, "alive", "paper", me)
    insert_run(dsn, "elsewhere", "paper", (os.getpid(), "another-host.example", me[2]))
    insert_run(dsn, "reused_pid", "paper", (os.getpid(), me[1], me[2] - 3600.0))
    for run_id in ("alive", "elsewhere", "reused_pid"):
        assert ledger.record_leg(entry(run_id, "T000001"))

    report = recover(dsn)

    assert [(run.run_id, run.crashed_now, run.settled) for run in report.runs] == [
        ("reused_pid", True, ["BTC"])
    ]
    assert [(row.run_id, state) for row, state in report.not_ours] == [("elsewhere", "foreign")]
    statuses = dict(rows(dsn, "SELECT run_id, status FROM runs"))
    assert statuses == {"alive": "running", "elsewhere": "running", "reused_pid": "crashed"}
    touched = rows(
        dsn, "SELECT DISTINCT run_id FROM event_log WHERE event_type IN ('RUN_CRASHED', 'RECOVERY_EXIT')"
    )
    assert touched == [("reused_pid",)]
    assert open_entries(dsn, "alive") == 1 and open_entries(dsn, "elsewhere") == 1


def test_positions_without_a_book_stay_open_and_are_settled_by_a_later_start(
    ledger: Ledger, dsn: str
) -> None:
    pid, created = dead_owner()
    insert_run(dsn, "paper_dead", "paper", (pid, socket.gethostname(), created))
    assert ledger.record_leg(entry("paper_dead", "T000001"))

    first = recover(dsn, provider=lambda: None)
    assert [run.line() for run in first.runs] == [
        f"arbitrage: recovered crashed run paper_dead (pid {pid}): "
        "left 1 open: no book: the market source gave no usable snapshot"
    ]
    assert open_entries(dsn, "paper_dead") == 1

    second = recover(dsn)
    assert [run.line() for run in second.runs] == [
        f"arbitrage: crashed run paper_dead (pid {pid}), crashed earlier: "
        "settled 1 open positions with recovery legs"
    ]
    assert open_entries(dsn, "paper_dead") == 0
    assert recover(dsn).runs == []
    assert rows(dsn, "SELECT count(*) FROM event_log WHERE event_type = 'RUN_CRASHED'") == [(1,)]


def test_two_engines_recovering_at_once_settle_each_run_once(ledger: Ledger, dsn: str) -> None:
    pid, created = dead_owner()
    insert_run(dsn, "raced", "paper", (pid, socket.gethostname(), created))
    for n, symbol in enumerate(("BTC", "ETH", "XRP"), start=1):
        assert ledger.record_leg(entry("raced", f"T{n:06d}", symbol))
    book = one_snapshot(AppConfig())
    assert book is not None
    barrier = threading.Barrier(2, timeout=DEADLINE_SEC)
    reports: list[RecoveryReport] = []

    def provider() -> MarketSnapshot:
        return book

    def engine() -> None:
        barrier.wait()
        reports.append(recover(dsn, provider))

    threads = [threading.Thread(target=engine) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SEC)
    assert len(reports) == 2
    runs = [run for report in reports for run in report.runs]
    assert sum(run.crashed_now for run in runs) == 1
    assert sorted(symbol for run in runs for symbol in run.settled) == ["BTC", "ETH", "XRP"]
    assert rows(dsn, "SELECT count(*) FROM event_log WHERE event_type = 'RUN_CRASHED'") == [(1,)]
    assert rows(dsn, "SELECT count(*) FROM event_log WHERE event_type = 'RECOVERY_EXIT'") == [(3,)]
    assert rows(dsn, "SELECT count(*) FROM trade_legs WHERE leg = 'exit' AND reason = 'recovery'") == [(3,)]


def test_the_recovery_book_is_given_up_at_its_deadline_on_a_silent_venue() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = AppConfig.model_validate(
            {"run": {"market": "ccxt", "exchange_url": url, "book_max_age_sec": 30}}
        )
        started = time.monotonic()
        assert one_snapshot(config, deadline_sec=1.0) is None
        waited = time.monotonic() - started
    finally:
        silent.close()
    assert 1.0 <= waited < 5.0, f"waited {waited:.2f} s for a 1 s deadline"
