"""Preflight (D98 §1.1, D77-4 §2.1): is it safe to start a run here, now?

Each check is a small function returning one PASS/FAIL/WARN row. Only FAIL blocks. Checks
that guard real money (kill switch, positions left open by a crashed run, another live
engine, market health) FAIL in live mode and are reported as WARN in paper mode, where
concurrent engines are normal and a market outage is itself under test. Infrastructure
(PostgreSQL, Redis, disk) and git secret hygiene FAIL in every mode.

Details never contain secrets: DSNs and URLs are shown without credentials, arming reasons
never quote a key, secret findings name the variable only.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil
import psycopg

from arbitrage.ledger import LedgerUnavailable, connect, describe_dsn
from arbitrage.market.source import MarketSource, book_rejection
from arbitrage.ops.kill_switch import KillSwitch, KillSwitchError
from arbitrage.ops.live_arm import check_arming
from arbitrage.ops.secrets_scan import Status, env_live_file_verdict, tracked_env_secrets_verdict
from arbitrage.order_trail import unbooked_by_run
from arbitrage.state import RunState, StateUnavailable, describe_url
from evidence.ledger_tables import EVENT_LOG, RUNS, TRADE_LEGS
from evidence.run_closure import LEAVES_NOTHING

Mode = Literal["paper", "live"]

PID_START_SLACK_SEC = 2.0
SHOWN_FINDINGS = 5


@dataclass(frozen=True, slots=True)
class PreflightCheck:
    """One row of the report."""

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<16} {self.detail}"


@dataclass
class PreflightReport:
    """All rows, in check order; `passed` when none FAILed."""

    mode: str
    checks: list[PreflightCheck]
    checked_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def passed(self) -> bool:
        return all(check.status != "FAIL" for check in self.checks)

    def failures(self) -> list[PreflightCheck]:
        return [check for check in self.checks if check.status == "FAIL"]

    def refusal(self) -> str | None:
        """The operator's one line for the first FAIL, or None when preflight passed."""
        failed = self.failures()
        return None if not failed else f"preflight failed: {failed[0].name}: {failed[0].detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "mode": self.mode,
            "checked_at": self.checked_at,
            "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks],
        }

    def write(self, path: Path) -> None:
        """Write the JSON report atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(temp, path)


@dataclass(frozen=True)
class PreflightContext:
    """Everything preflight looks at; `market` builds a fresh source (never the engine's own)."""

    mode: Mode
    env: Mapping[str, str]
    postgres_dsn: str
    redis_url: str
    market: Callable[[], MarketSource] | None = None
    now: float | None = None
    run_id: str | None = None
    redis_key_prefix: str = "arb"
    connect_timeout_sec: float = 5.0
    statement_timeout_ms: int = 5000
    redis_socket_timeout_sec: float = 2.0
    book_max_age_ms: int = 5000
    repo_dir: Path = Path(".")
    disk_path: Path = Path(".")
    min_free_disk_mb: float = 100.0
    own_pid: int = field(default_factory=os.getpid)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def live_only(mode: Mode, check: PreflightCheck) -> PreflightCheck:
    """In paper mode a live-money FAIL is reported as WARN: it cannot lose money there."""
    if mode == "live" or check.status != "FAIL":
        return check
    return PreflightCheck(check.name, "WARN", f"{check.detail} (not blocking in paper mode)")


def check_live_arm(mode: Mode, env: Mapping[str, str], now: float) -> PreflightCheck:
    if mode != "live":
        return PreflightCheck("live_arm", "PASS", "paper mode: live arming not required")
    decision = check_arming(env, now)
    return PreflightCheck("live_arm", "PASS" if decision.ok else "FAIL", decision.reason)


def check_postgres(
    dsn: str, connect_timeout_sec: float, statement_timeout_ms: int
) -> tuple[PreflightCheck, psycopg.Connection[Any] | None]:
    """Connect and run a query; on PASS the open connection is returned for the later checks."""
    where = describe_dsn(dsn)
    try:
        conn = connect(dsn, connect_timeout_sec, statement_timeout_ms)
    except LedgerUnavailable as exc:
        return PreflightCheck("postgres", "FAIL", str(exc)), None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            row = cur.fetchone()
    except psycopg.Error as exc:
        conn.close()
        return PreflightCheck(
            "postgres", "FAIL", f"postgres at {where} failed a query: {_first_line(exc)}"
        ), None
    version = row[0] if row else "?"
    return PreflightCheck("postgres", "PASS", f"{where} reachable (PostgreSQL {version})"), conn


def check_redis(
    url: str, key_prefix: str, socket_timeout_sec: float
) -> tuple[PreflightCheck, dict[str, dict[str, str]] | None]:
    """Ping Redis; on PASS the run registry is returned for the other-engines check."""
    state: RunState | None = None
    try:
        state = RunState(url, key_prefix, socket_timeout_sec)
        state.ping()
        registry = state.registry()
    except StateUnavailable as exc:
        return PreflightCheck("redis", "FAIL", str(exc)), None
    except Exception as exc:
        return PreflightCheck("redis", "FAIL", f"redis at {describe_url(url)}: {_first_line(exc)}"), None
    finally:
        if state is not None:
            state.close()
    return PreflightCheck("redis", "PASS", f"{describe_url(url)} reachable"), registry


def check_kill_switch(mode: Mode, conn: psycopg.Connection[Any] | None) -> PreflightCheck:
    """Live runs need the switch explicitly INACTIVE; an unknown state counts as ACTIVE."""
    if conn is None:
        unknown = PreflightCheck(
            "kill_switch", "FAIL", "state unknown: postgres unreachable (treated as ACTIVE)"
        )
        return live_only(mode, unknown)
    try:
        state = KillSwitch(conn).status()
    except KillSwitchError as exc:
        return live_only(mode, PreflightCheck("kill_switch", "FAIL", f"{exc} (treated as ACTIVE)"))
    if not state.active:
        return PreflightCheck("kill_switch", "PASS", state.describe())
    if mode == "live":
        return PreflightCheck(
            "kill_switch", "FAIL",
            f"{state.describe()}; release it with: arbitrage kill-switch deactivate --reason TEXT --by NAME",
        )  # fmt: skip
    return PreflightCheck("kill_switch", "PASS", f"{state.describe()} (blocks live orders only)")


_OPEN_ENTRIES_SQL = f"""
WITH open_runs AS MATERIALIZED (
    SELECT r.run_id FROM {RUNS} r
    WHERE r.mode = %(mode)s AND r.run_id IS DISTINCT FROM %(own)s
      AND NOT EXISTS (SELECT 1 FROM {EVENT_LOG} v
                      WHERE v.run_id = r.run_id AND v.event_type = ANY(%(leaves_nothing)s))
)
SELECT o.run_id, count(*), string_agg(DISTINCT e.symbol, ', ' ORDER BY e.symbol)
FROM open_runs o CROSS JOIN LATERAL (
    SELECT e.symbol FROM {TRADE_LEGS} e
    WHERE e.run_id = o.run_id AND e.leg = 'entry'
      AND NOT EXISTS (SELECT 1 FROM {TRADE_LEGS} x
                      WHERE x.run_id = e.run_id AND x.trade_id = e.trade_id AND x.leg = 'exit')
) e
GROUP BY o.run_id ORDER BY o.run_id
"""
"""Entry legs without an exit leg, per run that may leave something open. The runs come first
(MATERIALIZED) and their legs by the run's index (LATERAL): joined the other way, the planner scans
every entry leg of the mode, which grows with the ledger's history."""


def check_open_positions(
    mode: Mode, conn: psycopg.Connection[Any] | None, run_id: str | None
) -> PreflightCheck:
    """Exposure earlier runs of the same mode left that the ledger does not close: entry legs without
    an exit leg (named by run id and symbol) and, in live mode, orders sent but never booked
    (`order_trail`: in flight when the run died, or filled with no leg to show it).

    Runs that ended leaving nothing open are not read (`evidence.run_closure`). After reconciling
    them on the exchanges, an operator appends a `POSITIONS_RECONCILED`
    event_log row for that run_id, which clears it here.
    """
    if conn is None:
        return live_only(mode, PreflightCheck("open_positions", "FAIL", "unknown: postgres unreachable"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                _OPEN_ENTRIES_SQL, {"mode": mode, "own": run_id, "leaves_nothing": list(LEAVES_NOTHING)}
            )
            rows = cur.fetchall()
        unbooked = unbooked_by_run(conn, run_id) if mode == "live" else {}
    except psycopg.errors.UndefinedTable:
        return PreflightCheck("open_positions", "PASS", "no ledger tables yet: no earlier runs")
    except psycopg.Error as exc:
        return live_only(mode, PreflightCheck("open_positions", "FAIL", f"query failed: {_first_line(exc)}"))
    if not rows and not unbooked:
        return PreflightCheck("open_positions", "PASS", f"no {mode} positions left open by earlier runs")
    findings = []
    if rows:
        listed = ", ".join(f"{run} ({count}: {symbols})" for run, count, symbols in rows[:SHOWN_FINDINGS])
        total = sum(count for _, count, _ in rows)
        runs = len(rows)
        findings.append(f"{total} {mode} position(s) without an exit leg in {runs} earlier run(s): {listed}")
    if unbooked:
        orders = [f"{run} {order.describe()}" for run, found in unbooked.items() for order in found]
        shown = ", ".join(orders[:SHOWN_FINDINGS])
        runs = len(unbooked)
        findings.append(f"{len(orders)} live order(s) sent, never booked, in {runs} earlier run(s): {shown}")
    detail = "; ".join(
        [*findings, "reconcile on the exchanges, then record POSITIONS_RECONCILED for each run in event_log"]
    )
    return live_only(mode, PreflightCheck("open_positions", "FAIL", detail))


def _engine_alive(fields: Mapping[str, str], own_pid: int) -> int | None:
    """The pid of a registry entry's process when it is still that run's engine, else None."""
    try:
        pid = int(fields.get("pid", ""))
    except ValueError:
        return None
    if pid == own_pid or fields.get("status") != "running":
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        created = process.create_time()
    except psutil.Error:
        return None
    try:
        started = datetime.fromisoformat(fields.get("started_at", "")).timestamp()
    except ValueError:
        return pid
    return pid if created <= started + PID_START_SLACK_SEC else None


def check_other_engines(
    mode: Mode, registry: Mapping[str, Mapping[str, str]] | None, own_pid: int
) -> PreflightCheck:
    """Runs registered as `running` whose process is alive; a reused pid (started later) is not one."""
    if registry is None:
        return live_only(mode, PreflightCheck("other_engines", "FAIL", "unknown: redis unreachable"))
    alive = {
        run: pid for run, fields in registry.items() if (pid := _engine_alive(fields, own_pid)) is not None
    }
    stale = sum(1 for fields in registry.values() if fields.get("status") == "running") - len(alive)
    note = (
        f"; {stale} registry entr{'y' if stale == 1 else 'ies'} marked running whose process is gone"
        if stale
        else ""
    )
    if not alive:
        return PreflightCheck("other_engines", "PASS", f"no other engine alive in the run registry{note}")
    listed = ", ".join(f"{run} (pid {pid})" for run, pid in sorted(alive.items())[:SHOWN_FINDINGS])
    return live_only(
        mode, PreflightCheck("other_engines", "FAIL", f"{len(alive)} engine(s) alive: {listed}{note}")
    )


def check_market(factory: Callable[[], MarketSource] | None, max_age_ms: int) -> PreflightCheck:
    """Take one snapshot from a fresh source: the rate book and at least one pair must be usable."""
    if factory is None:
        return PreflightCheck("market", "WARN", "no market source given: not checked")
    source: MarketSource | None = None
    try:
        source = factory()
        snapshot = source.snapshot()
        now_ms = int(time.time() * 1000)
        fx_problem = book_rejection(snapshot.fx, now_ms, max_age_ms)
        if fx_problem is not None:
            return PreflightCheck("market", "FAIL", f"{source.name}: KRW-USDT book is {fx_problem}")
        usable = [
            symbol
            for symbol in snapshot.symbols()
            if book_rejection(snapshot.upbit[symbol], now_ms, max_age_ms) is None
            and book_rejection(snapshot.binance[symbol], now_ms, max_age_ms) is None
        ]
    except Exception as exc:
        return PreflightCheck("market", "FAIL", f"market source unhealthy: {_first_line(exc)}")
    finally:
        if source is not None:
            source.close()
    if not usable:
        return PreflightCheck("market", "FAIL", f"{source.name}: no symbol has usable books on both venues")
    return PreflightCheck("market", "PASS", f"{source.name}: {len(usable)} symbol(s) with usable books")


def check_env_live_file(repo: Path) -> PreflightCheck:
    """`.env.live` (the live keys) must be neither tracked nor committable: it must be git-ignored."""
    return PreflightCheck("env_live_file", *env_live_file_verdict(repo))


def check_tracked_env_secrets(repo: Path) -> PreflightCheck:
    """No tracked `.env*` file may hold a secret, in the committed blob or the working copy."""
    return PreflightCheck("env_secrets", *tracked_env_secrets_verdict(repo))


def check_disk(path: Path, min_free_mb: float) -> PreflightCheck:
    probe = path.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_mb = shutil.disk_usage(probe).free / 1_048_576
    status: Status = "PASS" if free_mb >= min_free_mb else "FAIL"
    return PreflightCheck("disk", status, f"{free_mb:.0f} MB free under {probe} (need {min_free_mb:.0f} MB)")


def run_preflight(ctx: PreflightContext) -> PreflightReport:
    """Every check, in a fixed order: arming first, so a disarmed live run names that first."""
    now = time.time() if ctx.now is None else ctx.now
    checks = [check_live_arm(ctx.mode, ctx.env, now)]
    pg_check, conn = check_postgres(ctx.postgres_dsn, ctx.connect_timeout_sec, ctx.statement_timeout_ms)
    redis_check, registry = check_redis(ctx.redis_url, ctx.redis_key_prefix, ctx.redis_socket_timeout_sec)
    try:
        checks += [
            pg_check,
            redis_check,
            check_kill_switch(ctx.mode, conn),
            check_open_positions(ctx.mode, conn, ctx.run_id),
        ]
    finally:
        if conn is not None:
            conn.close()
    checks += [
        check_other_engines(ctx.mode, registry, ctx.own_pid),
        live_only(ctx.mode, check_market(ctx.market, ctx.book_max_age_ms)),
        check_env_live_file(ctx.repo_dir),
        check_tracked_env_secrets(ctx.repo_dir),
        check_disk(ctx.disk_path, ctx.min_free_disk_mb),
    ]
    return PreflightReport(ctx.mode, checks)


def bootstrap_gate(ctx: PreflightContext, record: Callable[[str, dict[str, Any]], object]) -> str | None:
    """The run's start gate: live arming first (live only), then preflight.

    Each outcome is recorded through `record(event_type, payload)`: LIVE_ARM_REFUSED, PREFLIGHT
    (always, when reached) and LIVE_REFUSED. Returns the operator's refusal line, or None to go on.
    """
    now = time.time() if ctx.now is None else ctx.now
    if ctx.mode == "live":
        decision = check_arming(ctx.env, now)
        if not decision.ok:
            record("LIVE_ARM_REFUSED", decision.to_event())
            return f"live mode refused: {decision.reason}"
    report = run_preflight(ctx)
    record("PREFLIGHT", report.to_json())
    refusal = report.refusal()
    if refusal is not None and ctx.mode == "live":
        record("LIVE_REFUSED", {"reason": refusal})
        return f"live mode refused: {refusal}"
    return refusal
