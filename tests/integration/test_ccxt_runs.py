"""Engine runs over `--market ccxt` against `arbitrage sim`: smoke, slow answers, and a fault cycle.

Each run is a real engine subprocess, started through the harness's ``engine`` fixture, on real
PostgreSQL and Redis, reading a simulator subprocess through real ccxt. The ledger is recounted
here, not taken from the engine's KPIs. Each fault window of the cycle closes as soon as the
simulator has served the requests its checks need, and the run is stopped by SIGTERM as soon as its
last fault has cleared and the engine traded again; its duration is only an upper bound.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from arbitrage.config import SymbolsConfig
from harness.engine import EngineLauncher, EngineProcess
from harness.exchange_sim.client import SimProcess, book_requests, start_exchange_sim
from tests.support.engine_runs import leg_times, wait_while_alive

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SMOKE_SECONDS = 8
"""Long enough for entries on the smoke's simulator; the wallclock invariant allows 5 % of it (runs
end within 50 ms of it)."""
SMOKE_HALF_LIFE_SEC = 1
"""The smoke's simulator premium half-life: the cycle's, so its market crosses the default entry
threshold every few seconds and a short run trades wherever in the model's path it starts."""
LATENCY_SECONDS = 60
"""Only an upper bound: the run is stopped by SIGTERM once its slow tick has ended."""
LATENCY_HEARTBEAT_SEC = 2
LATENCY_MS = 4500
"""Longer than a heartbeat interval plus the lateness allowed below."""
LATENCY_BOOK_MAX_AGE_SEC = 8
"""Books LATENCY_MS late (and Binance's 50 ms apart after them) stay young enough to be used, and
the client timeout, which is this bound too, stays past LATENCY_MS on a loaded machine."""
HEARTBEAT_LATE_SEC = 1.5
"""How late a beat may be on a loaded machine; a beat written by the loop would come a tick apart,
LATENCY_MS, which is past the interval plus this by a whole second."""
CYCLE_SECONDS = 220
"""Only an upper bound: the cycle's run is stopped as soon as its last window has closed."""
STOP_GRACE_SEC = 60.0
"""How long the cycle's engine may take to close out after SIGTERM before it is killed."""
FIRST_TRADE_SEC = 60.0
"""On a loaded 2-core machine the first tick can come tens of seconds after the evidence line."""
RESUME_DEADLINE_SEC = 15.0
"""Only a bound: the engine usually trades again within 2 s of a fault clearing."""
MAX_BOOK_AGE_SEC = 2.0
TICK_MARGIN_SEC = 1.0
"""A tick already in flight when a fault starts may still use the books it fetched before it."""
MIN_FAULTED_TICKS = 2
"""Upbit requests each window must see inside the part the entry check covers (from TICK_MARGIN_SEC,
plus MAX_BOOK_AGE_SEC for "stale", after the fault went on); the window closes once they came. Under
"timeout" each waits out the 2 s client timeout, so that window spans two of them."""
BACKOFF_WINDOW_SEC = 4.0
"""The shortest 429/418 window: an engine ignoring Retry-After would ask twice a second, 8 times in
it, over the 4 / RETRY_AFTER_SEC + 2 the check allows; one honouring it asks about 3 times."""
WINDOW_CAP_SEC = 20.0
"""A window whose ticks have not come by then (a starved engine) is closed and reported."""
RETRY_AFTER_SEC = 1
"""The wait the cycle's simulator asks for with 429/418: the engine backs off and still resumes in time."""
BACKOFF_KINDS = ("rate_limit", "ban")
STRADDLING_BOOKS = SymbolsConfig().top_n()
"""A tick whose Upbit answer came just before a book fault began and whose Binance answers just after
has a good KRW-USDT book and rejects each faulted Binance book, one per symbol, in a single tick."""

FAULT_CYCLE: tuple[tuple[str, str, str], ...] = (
    ("rate_limit", "market_errors", "RateLimitExceeded"),
    ("ban", "market_errors", "DDoSProtection"),
    ("server_error", "market_errors", "ExchangeNotAvailable"),
    ("timeout", "market_errors", "RequestTimeout"),
    ("bad_json", "market_errors", "BadResponse"),
    ("stale", "rejected_books", "stale"),
    ("crossed", "rejected_books", "crossed"),
    ("empty", "rejected_books", "empty"),
    ("nan", "rejected_books", "non_finite"),
    ("negative", "rejected_books", "non_finite"),
    ("halted", "rejected_books", "empty"),
)
"""Each fault kind, the KPI group its ticks are counted in, and the counter's name."""


def ccxt_args(sim: SimProcess, seconds: float, *extra: str) -> list[str]:
    """`arbitrage run` over real ccxt against `sim`, bounded by `seconds`, seed 3."""
    return [
        "--market",
        "ccxt",
        "--exchange-url",
        sim.url,
        "--duration",
        f"{seconds:g}s",
        "--seed",
        "3",
        *extra,
    ]


@dataclass
class RunResult:
    """What a finished engine run left behind, with the ledger recounted from PostgreSQL."""

    returncode: int
    evidence: Path
    summary: dict[str, Any]
    kpi: dict[str, Any]
    legs: list[tuple[str, float]]
    sim_stats: dict[str, Any]

    @classmethod
    def of(cls, run: EngineProcess, returncode: int, dsn: str, sim: SimProcess) -> RunResult:
        stats = sim.stats() if sim.process.poll() is None else {}
        bundle = run.evidence
        assert bundle.chain_summary is not None and bundle.kpi is not None, run.describe()
        legs = leg_times(dsn, run.run_id)
        return cls(returncode, bundle.path, bundle.chain_summary, bundle.kpi, legs, stats)

    def invariant(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.summary["invariants"][name]
        return result


def _traded_after(dsn: str, run_id: str, since: float) -> bool:
    return any(t > since for _, t in leg_times(dsn, run_id))


def _cycle_env() -> dict[str, str]:
    return {
        "ARB_WARN_POLICY": "continue",
        "ARB_RUN__BOOK_MAX_AGE_SEC": str(MAX_BOOK_AGE_SEC),
        "ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "2.6",
        "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "2.4",
        "ARB_WATCHDOG__CRITICAL_AFTER_ERRORS": "100",
    }


def checked_margin(kind: str) -> float:
    """How far into a window of `kind` its entry check begins."""
    return TICK_MARGIN_SEC + (MAX_BOOK_AGE_SEC if kind == "stale" else 0.0)


def hold_window(sim: SimProcess, kind: str, t_on: float, alive: Callable[[], bool]) -> int | None:
    """Keep the fault on until MIN_FAULTED_TICKS Upbit requests came inside the checked part of the
    window (and, for a back-off kind, BACKOFF_WINDOW_SEC passed); the request count the checked part
    began at, None if it never began."""
    checked_from = t_on + checked_margin(kind)
    shortest = t_on + (BACKOFF_WINDOW_SEC if kind in BACKOFF_KINDS else 0.0)
    base: list[int] = []

    def enough() -> bool:
        now = time.time()
        if now < checked_from:
            return False
        served = sim.book_requests()
        if not base:
            base.append(served)
        return served - base[0] >= MIN_FAULTED_TICKS and now >= shortest

    wait_while_alive(enough, WINDOW_CAP_SEC, alive)
    return base[0] if base else None


def run_fault_cycle(run: EngineProcess, sim: SimProcess, dsn: str) -> list[dict[str, Any]]:
    """Each fault of FAULT_CYCLE in turn, after a first trade; the windows as the test saw them."""

    def alive() -> bool:
        return run.exit_code is None

    run_id = run.wait_for_evidence_dir(60).name
    started = time.time()
    assert wait_while_alive(lambda: bool(leg_times(dsn, run_id)), FIRST_TRADE_SEC, alive), (
        "no trade before the first fault"
    )
    windows: list[dict[str, Any]] = []
    for kind, _, _ in FAULT_CYCLE:
        assert time.time() + WINDOW_CAP_SEC + RESUME_DEADLINE_SEC < started + CYCLE_SECONDS, (
            f"the fault cycle fell behind the {CYCLE_SECONDS}s run before {kind!r}: {windows}"
        )
        t_on = time.time()
        on = sim.configure({"faults": [kind]})
        checked_base = hold_window(sim, kind, t_on, alive)
        assert alive(), f"the engine exited while {kind!r} was on"
        t_off = time.time()
        off = sim.configure({"faults": []})
        t_clear = time.time()
        resumed = wait_while_alive(partial(_traded_after, dsn, run_id, t_clear), RESUME_DEADLINE_SEC, alive)
        served = off["requests"].get("/v1/orderbook", 0)
        checked = 0 if checked_base is None else served - checked_base
        windows.append(
            {"kind": kind, "on": t_on, "off": t_off, "ticks": served - on["requests"].get("/v1/orderbook", 0),
             "checked_ticks": checked, "resumed": resumed, "cleared": t_clear}
        )  # fmt: skip
    assert alive(), "the engine exited before the fault cycle was done"
    return windows


@pytest.mark.timeout(CYCLE_SECONDS + 180)
@pytest.mark.allow_log("WARNING", r"^market data unavailable \(")
@pytest.mark.allow_log("WARNING", r"^rejected \S+ book ")
@pytest.mark.allow_log("WARNING", r"^watchdog \S+ -> WARN: ")
@pytest.mark.allow_log("ERROR", r"^watchdog \S+ -> ERROR: ")
def test_each_fault_is_counted_never_traded_on_and_recovered_from(
    engine: EngineLauncher, postgres_dsn: str, tmp_path: Path
) -> None:
    cycle_sim = ("--seed", "3", "--premium-half-life-sec", "1", "--retry-after-sec", str(RETRY_AFTER_SEC))
    with start_exchange_sim(*cycle_sim) as sim:
        run = engine(env=_cycle_env()).start(ccxt_args(sim, CYCLE_SECONDS, "--heartbeat-interval", "5"))
        windows = run_fault_cycle(run, sim, postgres_dsn)
        result = RunResult.of(run, run.terminate(grace=STOP_GRACE_SEC), postgres_dsn, sim)

    assert result.returncode == 1 and result.summary["exit_code"] == 1, result.summary
    assert result.summary["stop_reason"] == "SIGTERM"
    assert result.summary["warnings_count"] >= 1
    for name in ("completeness", "db", "heartbeat_density"):
        assert result.invariant(name)["passed"], (name, result.invariant(name))
    assert len(result.legs) == 2 * result.summary["closed_trades"], (len(result.legs), result.summary)
    problems = fault_cycle_problems(result, windows)
    counters = {k: result.kpi[k] for k in ("market_errors", "rejected_books", "rate_limit")}
    report = {
        "run_id": run.run_id,
        "evidence": str(result.evidence),
        "counters": counters,
        "windows": windows,
    }
    (tmp_path / "fault_cycle.json").write_text(json.dumps(report, indent=2))
    summary = [(w["kind"], w["ticks"], w["resumed"]) for w in windows]
    assert not problems, f"{problems}\nwindows (kind, faulted ticks, resumed): {summary}\n{counters}"


def fault_cycle_problems(result: RunResult, windows: list[dict[str, Any]]) -> list[str]:
    """Every way the run's counters and entries disagree with the fault windows the test opened."""
    entries = [t for leg, t in result.legs if leg == "entry"]
    problems: list[str] = []
    for window, (kind, group, counter) in zip(windows, FAULT_CYCLE, strict=True):
        margin = checked_margin(kind)
        inside = [round(t - window["on"], 2) for t in entries if window["on"] + margin <= t <= window["off"]]
        if inside:
            problems.append(f"{kind}: entries {inside} s into the fault window")
        if window["checked_ticks"] < MIN_FAULTED_TICKS:
            n = window["checked_ticks"]
            problems.append(f"{kind}: the engine asked only {n} times from {margin:g}s into the fault window")
        if not window["resumed"]:
            problems.append(f"{kind}: no trade within {RESUME_DEADLINE_SEC}s after the fault cleared")
        if result.kpi[group].get(counter, 0) == 0:
            problems.append(f"{kind}: {group}.{counter} never rose: {result.kpi[group]}")
        held = window["off"] - window["on"]
        if kind in BACKOFF_KINDS and window["ticks"] > held / RETRY_AFTER_SEC + 2:
            problems.append(f"{kind}: asked {window['ticks']} times in {held:.1f}s despite Retry-After")
    backoff = [w for w in windows if w["kind"] in BACKOFF_KINDS]
    upbit_limits = result.kpi["rate_limit"]["upbit"]
    if abs(upbit_limits["hits"] - sum(w["ticks"] for w in backoff)) > 2 * len(backoff):
        problems.append(f"rate_limit.upbit.hits {upbit_limits} against {[w['ticks'] for w in backoff]} asked")
    if upbit_limits["wait_seconds"] < RETRY_AFTER_SEC * sum(w["ticks"] for w in backoff) / 2:
        problems.append(f"rate_limit.upbit.wait_seconds too small: {upbit_limits}")
    for group, counter in {(g, c) for k, g, c in FAULT_CYCLE if k not in ("stale", *BACKOFF_KINDS)}:
        shared = [w for w, (_, g, c) in zip(windows, FAULT_CYCLE, strict=True) if (g, c) == (group, counter)]
        expected = sum(w["ticks"] for w in shared)
        observed = result.kpi[group].get(counter, 0)
        slack = 2 + (STRADDLING_BOOKS if group == "rejected_books" else 0)
        if abs(observed - expected) > slack * len(shared):
            kinds = [w["kind"] for w in shared]
            problems.append(f"{group}.{counter}: {observed} counted, {expected} faulted ticks in {kinds}")
    stale = windows[[k for k, _, _ in FAULT_CYCLE].index("stale")]
    if result.kpi["rejected_books"].get("stale", 0) > stale["ticks"]:
        problems.append(f"stale: more rejections than ticks: {result.kpi['rejected_books']}, {stale}")
    return problems


def test_smoke_run_over_ccxt_exits_0_with_trades(engine: EngineLauncher, postgres_dsn: str) -> None:
    with start_exchange_sim("--seed", "3", "--premium-half-life-sec", str(SMOKE_HALF_LIFE_SEC)) as sim:
        run = engine().start(ccxt_args(sim, SMOKE_SECONDS))
        result = RunResult.of(run, run.wait(timeout=SMOKE_SECONDS + 60), postgres_dsn, sim)
    assert result.returncode == 0 and result.summary["exit_code"] == 0, result.summary
    assert result.summary["stop_reason"] == "DURATION_REACHED"
    assert result.summary["closed_trades"] >= 1
    for name, outcome in result.summary["invariants"].items():
        assert outcome["passed"], (name, outcome)
    assert len(result.legs) == 2 * result.summary["closed_trades"]
    assert result.kpi["market_errors"] == {} and result.kpi["rejected_books"] == {}
    # Each completed tick asked Upbit once and Binance for each of the 10 symbols' depth. The fetch
    # the run's deadline gave up is cancelled when the source closes: it may have asked for less,
    # or for nothing yet.
    completed, abandoned = result.kpi["loop_count"], result.kpi["abandoned_fetches"]
    requests = result.sim_stats["requests"]
    assert completed <= requests["/v1/orderbook"] <= completed + abandoned, (requests, abandoned)
    assert 10 * completed <= requests["/api/v3/depth"] <= 10 * (completed + abandoned), (requests, abandoned)
    assert requests["/v1/market/all"] == requests["/api/v3/exchangeInfo"] == 1


def _latency_env() -> dict[str, str]:
    """No entries: the point is the beats, and a position opened on the slow tick's books, which are
    LATENCY_MS old when screened, could be too old to close at stop."""
    return {
        "ARB_WARN_POLICY": "continue",
        "ARB_RUN__BOOK_MAX_AGE_SEC": str(LATENCY_BOOK_MAX_AGE_SEC),
        "ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "49",
    }


@pytest.mark.allow_log("WARNING", r"^market data unavailable \(RequestTimeout")
@pytest.mark.allow_log("WARNING", r"^watchdog \S+ -> WARN: ")
@pytest.mark.allow_log("ERROR", r"^watchdog \S+ -> ERROR: ")
def test_slow_answers_keep_the_heartbeat_regular(engine: EngineLauncher, postgres_dsn: str) -> None:
    """Answers turn LATENCY_MS late after the first tick's first request, until one request more has
    come in: the tick holding it is slow (its beats are what is judged), the ones after it are quick,
    and the run is stopped by SIGTERM once the next tick has begun."""
    with start_exchange_sim("--seed", "3") as sim:
        run = engine(env=_latency_env())
        run.start(ccxt_args(sim, LATENCY_SECONDS, "--heartbeat-interval", str(LATENCY_HEARTBEAT_SEC)))

        def alive() -> bool:
            return run.exit_code is None

        assert wait_while_alive(lambda: sim.book_requests() >= 1, FIRST_TRADE_SEC, alive), run.describe()
        before = _venue_requests(sim.configure({"latency_ms": LATENCY_MS}))
        assert wait_while_alive(lambda: _venue_requests(sim.stats()) > before, 30, alive), run.describe()
        slow_tick = book_requests(sim.configure({"latency_ms": 0}))
        assert wait_while_alive(lambda: sim.book_requests() > slow_tick, 30, alive), run.describe()
        result = RunResult.of(run, run.terminate(), postgres_dsn, sim)
    density = result.invariant("heartbeat_density")
    assert density["passed"] and density["observed"] <= LATENCY_HEARTBEAT_SEC + HEARTBEAT_LATE_SEC, density
    assert result.invariant("completeness")["passed"]
    assert result.kpi["tick_duration_ms"]["max"] >= LATENCY_MS, result.kpi["tick_duration_ms"]


def _venue_requests(stats: dict[str, Any]) -> int:
    return sum(n for route, n in stats["requests"].items() if route in ("/v1/orderbook", "/api/v3/depth"))
