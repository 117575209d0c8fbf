"""Crash recovery on the next start: runs left `running` by a process that is gone.

A SIGKILL (or a power cut) leaves a `runs` row saying `running` and entry legs without their exit
leg. The next `run` or `preflight` finds such runs of this host, marks them `crashed` with a
RUN_CRASHED event, and settles a paper run's open positions with an exit leg at the current book
(reason `recovery`, RECOVERY_EXIT event), so that the ledger balances. A live run's positions are
never touched: they stay open, preflight refuses arming while they are, and the line says so.

Concurrent engines starting at once settle each run once: the `crashed` mark is a conditional
UPDATE whose row count says who won, and each exit leg is inserted ON CONFLICT DO NOTHING with its
event written only by the insert that added the row, in the same transaction. A run whose owner
lives on another host, or whose owner is unknown, is reported and left alone.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from arbitrage.config import AppConfig, StrategyConfig
from arbitrage.journal_replay import replay_pending_journals
from arbitrage.ledger import LegRow, connect
from arbitrage.ledger_records import INSERT_LEG_SQL
from arbitrage.logs import announce
from arbitrage.market.book import MarketSnapshot
from arbitrage.order_trail import unbooked_by_run
from arbitrage.owner import OwnerState, owner_state, process_create_time
from arbitrage.recovery_exit import OPEN_ENTRY_COLUMNS, OpenEntry, recovery_exit
from arbitrage.sources import one_snapshot
from evidence.ledger_tables import EVENT_LOG, RUNS, TRADE_LEGS
from evidence.run_closure import POSITIONS_RECONCILED

CRASHED_STOP_REASON = "CRASHED"

SnapshotProvider = Callable[[], MarketSnapshot | None]

_RUNNING_SQL = (
    f"SELECT run_id, mode, pid, host, process_started FROM {RUNS}"
    " WHERE status = 'running' ORDER BY started_at"
)
_MARK_CRASHED_SQL = (
    f"UPDATE {RUNS} SET status = 'crashed', stop_reason = %s, ended_at = now()"
    " WHERE run_id = %s AND status = 'running'"
)
_OPEN_ENTRIES_SQL = f"""
SELECT r.mode, r.pid AS owner_pid, {", ".join(f"e.{c}" for c in OPEN_ENTRY_COLUMNS)},
       (SELECT max(t.tick) FROM {TRADE_LEGS} t WHERE t.run_id = e.run_id) AS last_tick
FROM {TRADE_LEGS} e JOIN {RUNS} r ON r.run_id = e.run_id
WHERE r.status = 'crashed' AND e.leg = 'entry' AND (%(run_id)s::text IS NULL OR e.run_id = %(run_id)s)
  AND NOT EXISTS (SELECT 1 FROM {TRADE_LEGS} x
                  WHERE x.run_id = e.run_id AND x.trade_id = e.trade_id AND x.leg = 'exit')
  AND NOT EXISTS (SELECT 1 FROM {EVENT_LOG} v
                  WHERE v.run_id = e.run_id AND v.event_type = '{POSITIONS_RECONCILED}')
ORDER BY r.started_at, e.run_id, e.trade_id
"""
_INSERT_EVENT_SQL = (
    f"INSERT INTO {EVENT_LOG} (run_id, event_type, correlation_id, payload) VALUES (%s, %s, %s, %s)"
)


@dataclass(frozen=True, slots=True)
class RunningRow:
    """A `runs` row still saying `running`, with the owner facts its engine recorded."""

    run_id: str
    mode: str
    pid: int | None
    host: str | None
    process_started: float | None


@dataclass
class RunRecovery:
    """What recovery did to one crashed run: `settled` and `left_open` are symbols (with why);
    `unbooked` counts the orders a live run sent and never booked (`order_trail`)."""

    run_id: str
    mode: str
    pid: int | None
    crashed_now: bool
    settled: list[str] = field(default_factory=list)
    left_open: list[tuple[str, str]] = field(default_factory=list)
    unbooked: int = 0

    def line(self) -> str:
        """The operator's one line for this run."""
        pid = f" (pid {self.pid})" if self.pid is not None else ""
        head = f"arbitrage: recovered crashed run {self.run_id}{pid}" if self.crashed_now else (
            f"arbitrage: crashed run {self.run_id}{pid}, crashed earlier"
        )  # fmt: skip
        if self.mode == "live":
            held = []
            if self.left_open:
                symbols = ", ".join(sorted({symbol for symbol, _ in self.left_open}))
                held.append(f"left {len(self.left_open)} open positions untouched ({symbols})")
            if self.unbooked:
                held.append(f"{self.unbooked} sent order(s) never booked")
            if not held:
                return f"{head}: live, no open positions"
            return (
                f"{head}: live, {' and '.join(held)}; live arming is refused until they are reconciled on"
                " the exchanges and POSITIONS_RECONCILED is recorded"
            )
        if not self.settled and not self.left_open:
            return f"{head}: no open positions"
        parts = [f"settled {len(self.settled)} open positions with recovery legs"] if self.settled else []
        if self.left_open:
            reasons = "; ".join(sorted({why for _, why in self.left_open}))
            parts.append(f"left {len(self.left_open)} open: {reasons}")
        return f"{head}: {', '.join(parts)}"


@dataclass
class RecoveryReport:
    """Every crashed run handled, and the `running` rows left alone because their owner is not ours."""

    runs: list[RunRecovery] = field(default_factory=list)
    not_ours: list[tuple[RunningRow, OwnerState]] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [run.line() for run in self.runs]
        for row, state in self.not_ours:
            owner = f"host {row.host}, pid {row.pid}" if state == "foreign" else "no owner process recorded"
            lines.append(
                f"arbitrage: run {row.run_id} is marked running ({owner}): owner unknown, left as is"
            )
        return lines


def _running_rows(conn: psycopg.Connection[Any]) -> list[RunningRow]:
    with conn.cursor() as cur:
        cur.execute(_RUNNING_SQL)
        return [RunningRow(*row) for row in cur.fetchall()]


def _open_entries(
    conn: psycopg.Connection[Any], run_id: str | None
) -> list[tuple[str, int | None, OpenEntry]]:
    """(mode, owner pid, entry) for every open entry leg of a crashed run (of `run_id` only, if given)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_OPEN_ENTRIES_SQL, {"run_id": run_id})
        rows = cur.fetchall()
    return [(row.pop("mode"), row.pop("owner_pid"), OpenEntry.from_row(row)) for row in rows]


def mark_crashed(conn: psycopg.Connection[Any], row: RunningRow) -> bool:
    """Mark the run `crashed` with its RUN_CRASHED event; False when another engine already did."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_MARK_CRASHED_SQL, (CRASHED_STOP_REASON, row.run_id))
        if cur.rowcount != 1:
            return False
        entries = [entry for _, _, entry in _open_entries(conn, row.run_id)]
        payload = {
            "pid": row.pid, "host": row.host, "process_started": row.process_started, "mode": row.mode,
            "open_legs": len(entries), "open_symbols": sorted({e.symbol for e in entries}),
            "open_trade_ids": [e.trade_id for e in entries], "recovered_by_pid": os.getpid(),
        }  # fmt: skip
        cur.execute(_INSERT_EVENT_SQL, (row.run_id, "RUN_CRASHED", None, Jsonb(payload)))
    return True


def settle_exit(conn: psycopg.Connection[Any], row: LegRow) -> bool:
    """Insert one recovery exit leg and its RECOVERY_EXIT event; False when the leg was already there."""
    params = {name: getattr(row, name) for name in LegRow.__slots__}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(INSERT_LEG_SQL, params)
        if cur.rowcount != 1:
            return False
        payload = {
            "trade_id": row.trade_id, "symbol": row.symbol, "direction": row.direction, "qty": row.qty,
            "upbit_vwap_krw": row.upbit_vwap_krw, "binance_vwap_usdt": row.binance_vwap_usdt,
            "krw_per_usdt": row.krw_per_usdt, "pnl_krw": row.pnl_krw, "pnl_usd": row.pnl_usd,
        }  # fmt: skip
        cur.execute(_INSERT_EVENT_SQL, (row.run_id, "RECOVERY_EXIT", row.correlation_id, Jsonb(payload)))
    return True


def recover_crashed_runs(
    conn: psycopg.Connection[Any],
    strategy: StrategyConfig,
    seed: int,
    snapshot: SnapshotProvider,
    *,
    local_host: str | None = None,
    create_time: Callable[[int], float | None] = process_create_time,
) -> RecoveryReport:
    """Mark this host's dead `running` runs `crashed` and settle every crashed paper run's open positions.

    `snapshot` is called at most once, and only when there is a paper position to settle. Runs
    crashed earlier whose positions are still open (no book last time) are retried. Raises
    psycopg.Error when the database fails; what was committed before stays committed.
    """
    here = socket.gethostname() if local_host is None else local_host
    report = RecoveryReport()
    crashed_now: dict[str, RunningRow] = {}
    for row in _running_rows(conn):
        state = owner_state(
            row.host, row.pid, row.process_started, here,
            create_time(row.pid) if row.pid is not None and row.host == here else None,
        )  # fmt: skip
        if state in ("foreign", "unknown"):
            report.not_ours.append((row, state))
        elif state == "gone" and mark_crashed(conn, row):
            crashed_now[row.run_id] = row
    live_crashed = any(row.mode == "live" for row in crashed_now.values())
    unbooked = unbooked_by_run(conn, None) if live_crashed else {}
    by_run: dict[str, RunRecovery] = {
        run_id: RunRecovery(
            run_id, row.mode, row.pid, crashed_now=True, unbooked=len(unbooked.get(run_id, []))
        )
        for run_id, row in crashed_now.items()
    }
    book: list[MarketSnapshot | None] = []
    for mode, pid, entry in _open_entries(conn, None):
        run = by_run.setdefault(entry.run_id, RunRecovery(entry.run_id, mode, pid, crashed_now=False))
        if mode != "paper":
            run.left_open.append((entry.symbol, "live position"))
            continue
        if not book:
            book.append(snapshot())
        if book[0] is None:
            run.left_open.append((entry.symbol, "no book: the market source gave no usable snapshot"))
            continue
        leg = recovery_exit(entry, book[0], strategy, seed)
        if isinstance(leg, str):
            run.left_open.append((entry.symbol, leg))
        elif settle_exit(conn, leg):
            run.settled.append(entry.symbol)
    report.runs = [run for run in by_run.values() if run.crashed_now or run.settled or run.left_open]
    return report


def recover_at_start(config: AppConfig, dsn: str, err: TextIO | None = None) -> bool:
    """What `run` and `preflight` owe the runs before them, first thing: replay the ledger journals
    that runs left pending, then recover crashed runs; one stderr line per run handled.

    Never raises: a failure is one `arbitrage: ERROR: ...` line. Returns False only when that
    happened in live mode, where the run must then refuse to start.
    """
    for line in replay_pending_journals(config, dsn):
        announce(f"arbitrage: {line}", err)
    svc = config.services
    try:
        with connect(dsn, svc.connect_timeout_sec, svc.statement_timeout_ms) as conn:
            report = recover_crashed_runs(
                conn, config.strategy, config.run.seed, lambda: one_snapshot(config)
            )
    except Exception as exc:  # recovery must never crash the run that follows
        text = str(exc).strip()
        cause = text.splitlines()[0] if text else type(exc).__name__
        refusing = "; live mode refuses to start" if config.run.mode == "live" else ""
        print(
            f"arbitrage: ERROR: crash recovery failed: {cause}{refusing}", file=err or sys.stderr, flush=True
        )
        return config.run.mode != "live"
    for line in report.lines():
        announce(line, err)
    return True
