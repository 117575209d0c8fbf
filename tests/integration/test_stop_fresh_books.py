"""The stop-time flatten fetches fresh books when a held symbol's last ones are too old to exit on.

A SIGTERM late in a tick interval longer than `run.book_max_age_sec` finds every held symbol's
books too old. The engine fetches once more (bounded) and closes on the fresh books; when the
venue does not answer, the positions are reported open, and the stop still ends in bounded time,
waiting for no request the venue holds, even when books may be a minute old. Each case is a real
engine over ccxt against the exchange simulator, on real PostgreSQL and Redis; outcomes are read
from the ledger, the evidence files and the simulator's request counts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from arbitrage.services import ServiceEndpoints
from arbitrage.sources import REQUEST_TIMEOUT_CAP_SEC
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support.engine_process import EngineProcess, sealed_manifest, wait_for

pytestmark = pytest.mark.integration

TICK_INTERVAL_SEC = 6.0
BOOK_MAX_AGE_SEC = 2.0
QUIET_SEC = 3.0
"""How long after a tick's book requests the SIGTERM comes: past BOOK_MAX_AGE_SEC, and 3 s before
the next tick."""
HANG_MS = 30_000
"""The simulator's reply delay in the hanging-venue case: far beyond any bound of the stop."""
FLUSH_BUDGET_SEC = 10.0
"""The protocol's bound on a stop, SIGTERM to exit (Docker's default grace)."""

HOLD_EVERYTHING_ENV = {"ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "-40", "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "-45"}
"""Enter every symbol on the first tick and never exit before stop."""
LONG_INTERVAL_ENV = {
    **HOLD_EVERYTHING_ENV,
    "ARB_WARN_POLICY": "continue",
    "ARB_RUN__TICK_INTERVAL_SEC": str(TICK_INTERVAL_SEC),
    "ARB_RUN__BOOK_MAX_AGE_SEC": str(BOOK_MAX_AGE_SEC),
}
"""HOLD_EVERYTHING_ENV with ticks 6 s apart."""


def _holding(tmp_path: Path, server: ServiceEndpoints, sim: SimProcess, env: dict[str, str]) -> EngineProcess:
    """An engine over ccxt against `sim`, with `env`, once it holds positions."""
    engine = EngineProcess(
        tmp_path, server, "--market", "ccxt", "--exchange-url", sim.url, "--duration", "120s",
        "--seed", "5", "--heartbeat-interval", "1", env=env,
    )  # fmt: skip
    engine.wait_for_evidence()
    wait_for(lambda: engine.open_trades() or not engine.alive(), 60, "open positions")
    assert engine.alive(), engine.stderr
    return engine


def _holding_between_ticks(tmp_path: Path, server: ServiceEndpoints, sim: SimProcess) -> EngineProcess:
    """An engine holding positions, QUIET_SEC after its latest tick's book requests."""
    engine = _holding(tmp_path, server, sim, LONG_INTERVAL_ENV)
    seen = {"requests": sim.book_requests(), "at": time.monotonic()}

    def quiet() -> bool:
        requests = sim.book_requests()
        if requests != seen["requests"]:
            seen.update(requests=requests, at=time.monotonic())
        return time.monotonic() - seen["at"] >= QUIET_SEC

    wait_for(quiet, 2 * TICK_INTERVAL_SEC + QUIET_SEC + 10, f"{QUIET_SEC}s without a book request")
    assert engine.alive(), engine.stderr
    return engine


def _sigterm(engine: EngineProcess) -> tuple[int, float]:
    """SIGTERM the engine; its exit code and how long it took to exit (at most 30 s)."""
    stopped = time.monotonic()
    engine.process.terminate()
    code = engine.wait(30)
    return code, time.monotonic() - stopped


def _exit_reasons(engine: EngineProcess, trades: dict[str, str]) -> dict[str, str | None]:
    """trade_id -> the reason of its exit leg in the ledger (None without one), for `trades`."""
    exits = {t: r for t, leg, _, r in engine.legs() if leg == "exit"}
    return {t: exits.get(t) for t in trades}


def _reported_open(engine: EngineProcess, code: int) -> dict[str, str]:
    """trade_id -> reason of the positions a SIGTERMed run's sealed evidence reports open (kpi.json
    and chain_summary.json must agree), once its exit and evidence are those of a SIGTERM."""
    assert code == 1, engine.stderr
    assert "Traceback" not in engine.stderr, engine.stderr
    evidence = engine.evidence_dir()
    assert evidence is not None
    assert sealed_manifest(evidence)["status"] == "failed"
    kpi = json.loads((evidence / "kpi.json").read_text())
    summary = json.loads((evidence / "chain_summary.json").read_text())
    assert kpi["open_positions"] == summary["open_positions"]
    return {p["trade_id"]: p["reason"] for p in kpi["open_positions"]}


def _requests(stats: dict[str, Any]) -> int:
    """Requests the simulator received on every venue route (control calls are not counted)."""
    return sum(int(count) for count in stats["requests"].values())


def _left_open_events(engine: EngineProcess) -> list[str]:
    """trade_ids of the run's POSITION_LEFT_OPEN events in the ledger, sorted."""
    rows = engine.query(
        "SELECT payload->>'trade_id' FROM event_log WHERE run_id = %s AND event_type = 'POSITION_LEFT_OPEN'",
        engine.run_id(),
    )
    return sorted(str(t) for (t,) in rows)


def test_a_stop_after_the_books_aged_closes_every_position_on_fresh_books(
    server: ServiceEndpoints, tmp_path: Path
) -> None:
    sim = start_exchange_sim("--seed", "5")
    try:
        engine = _holding_between_ticks(tmp_path, server, sim)
        held = engine.open_trades()
        before_stop = sim.book_requests()
        code, _ = _sigterm(engine)
        after_stop = sim.book_requests()
    finally:
        sim.stop()

    assert after_stop > before_stop, "the stop fetched no books"
    assert _reported_open(engine, code) == {}
    assert _exit_reasons(engine, held) == dict.fromkeys(held, "flatten")
    assert engine.open_trades() == {}
    assert _left_open_events(engine) == []


def test_a_venue_hanging_at_the_stop_leaves_the_positions_reported_open_in_bounded_time(
    server: ServiceEndpoints, tmp_path: Path
) -> None:
    sim = start_exchange_sim("--seed", "5")
    try:
        engine = _holding_between_ticks(tmp_path, server, sim)
        held = engine.open_trades()
        sim.configure({"latency_ms": HANG_MS})
        code, stop_took = _sigterm(engine)
    finally:
        sim.stop()

    # The stop waits for fresh books at most 2 s, then cancels the request as the fetcher closes:
    # far below the simulator's 30 s delay.
    assert stop_took < HANG_MS / 1000 / 2, f"the stop took {stop_took:.1f}s"
    reported = _reported_open(engine, code)
    assert set(reported) == set(held), (reported, held)
    assert all("book_max_age_sec" in reason for reason in reported.values()), reported
    assert engine.open_trades() == held
    assert _left_open_events(engine) == sorted(held)


def test_a_venue_hanging_mid_tick_cannot_hold_a_sigterm_past_the_flush_budget(
    server: ServiceEndpoints, tmp_path: Path
) -> None:
    # Books may be a minute old here. A request's timeout once followed that bound, and a venue that
    # stopped answering mid-tick held the stop until its reply came (30 s), past Docker's grace;
    # with the timeout capped at 5 s, until then. The stop cancels the request and waits for none.
    sim = start_exchange_sim("--seed", "5")
    try:
        env = {**HOLD_EVERYTHING_ENV, "ARB_WARN_POLICY": "continue", "ARB_RUN__BOOK_MAX_AGE_SEC": "60"}
        engine = _holding(tmp_path, server, sim, env)
        held = engine.open_trades()
        hanging = _requests(sim.configure({"latency_ms": HANG_MS}))
        wait_for(lambda: _requests(sim.stats()) > hanging, 30, "a request the venue holds")
        code, stop_took = _sigterm(engine)
    finally:
        sim.stop()

    assert stop_took < REQUEST_TIMEOUT_CAP_SEC < FLUSH_BUDGET_SEC, f"the stop took {stop_took:.1f}s"
    # Every position closes on its last books, which a minute's bound still accepts.
    assert _reported_open(engine, code) == {}
    assert _exit_reasons(engine, held) == dict.fromkeys(held, "flatten")
    assert engine.open_trades() == {}
