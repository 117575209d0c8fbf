"""The PostgreSQL trade ledger: one row per trade leg, plus the run registry and event log.

Rows are what the DB invariant is checked against, so `db_inserts_ok` counts only what the
database acknowledged. Inserts are idempotent on `(run_id, trade_id, leg)`, so a retry after
an ambiguous failure can never double-count. Connect and statement timeouts are bounded: a
dead or hung database fails a call within seconds instead of hanging the run.

`event_log` and `system_state` are append-only, enforced by the database itself: triggers
reject UPDATE, DELETE and TRUNCATE. The triggers are created only when missing (no DROP), so
starting an engine never takes an exclusive lock on a table another engine is writing.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil
import psycopg
from psycopg.types.json import Jsonb

from arbitrage.ops.kill_switch import SYSTEM_STATE_SQL

log = logging.getLogger("arbitrage.ledger")

SCHEMA_VERSION = 3
_SCHEMA_LOCK_KEY = 0x4152_4231  # advisory lock: concurrent engines create the schema once

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id          text PRIMARY KEY,
    phase           text NOT NULL,
    mode            text NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    status          text NOT NULL,
    stop_reason     text,
    exit_code       integer,
    closed_trades   integer,
    seed            integer,
    git_sha         text,
    config_hash     text NOT NULL,
    schema_version  integer NOT NULL,
    pid             integer,
    host            text,
    process_started double precision
);
CREATE TABLE IF NOT EXISTS trade_legs (
    id                  bigserial PRIMARY KEY,
    run_id              text NOT NULL,
    trade_id            text NOT NULL,
    leg                 text NOT NULL CHECK (leg IN ('entry', 'exit')),
    correlation_id      text NOT NULL,
    symbol              text NOT NULL,
    direction           text NOT NULL,
    qty                 numeric NOT NULL,
    upbit_side          text NOT NULL,
    upbit_vwap_krw      numeric NOT NULL,
    upbit_fee_krw       numeric NOT NULL,
    binance_side        text NOT NULL,
    binance_vwap_usdt   numeric NOT NULL,
    binance_fee_usdt    numeric NOT NULL,
    krw_per_usdt        numeric NOT NULL,
    premium_net_pct     numeric NOT NULL,
    pnl_krw             numeric,
    pnl_usd             numeric,
    reason              text NOT NULL,
    tick                integer NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, trade_id, leg)
);
CREATE TABLE IF NOT EXISTS event_log (
    id              bigserial PRIMARY KEY,
    ts              timestamptz NOT NULL DEFAULT now(),
    run_id          text,
    event_type      text NOT NULL,
    correlation_id  text,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_uid       text
);
"""

UPGRADE_SQL = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'runs' AND column_name = 'pid') THEN
        ALTER TABLE runs ADD COLUMN pid integer, ADD COLUMN host text,
            ADD COLUMN process_started double precision;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'event_log'
                     AND column_name = 'event_uid') THEN
        ALTER TABLE event_log ADD COLUMN event_uid text;
    END IF;
    IF to_regclass('trade_legs_run_idx') IS NULL THEN
        CREATE INDEX trade_legs_run_idx ON trade_legs (run_id);
    END IF;
    IF to_regclass('event_log_run_idx') IS NULL THEN
        CREATE INDEX event_log_run_idx ON event_log (run_id);
    END IF;
    IF to_regclass('event_log_correlation_idx') IS NULL THEN
        CREATE INDEX event_log_correlation_idx ON event_log (correlation_id);
    END IF;
    IF to_regclass('event_log_uid_idx') IS NULL THEN
        CREATE UNIQUE INDEX event_log_uid_idx ON event_log (event_uid);
    END IF;
END
$$;
"""
"""Columns and indexes newer than the tables an older engine created (the run's owner process for
crash recovery, an event's idempotency key for journal replay), each added only when missing:
ALTER TABLE and CREATE INDEX lock the table even when there is nothing to do, and must not queue
behind another engine's open (or frozen) transaction."""

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION arb_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['event_log', 'system_state'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger
                       WHERE tgrelid = tbl::regclass AND tgname = tbl || '_append_only') THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW'
                           ' EXECUTE FUNCTION arb_reject_mutation()', tbl || '_append_only', tbl);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger
                       WHERE tgrelid = tbl::regclass AND tgname = tbl || '_no_truncate') THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT'
                           ' EXECUTE FUNCTION arb_reject_mutation()', tbl || '_no_truncate', tbl);
        END IF;
    END LOOP;
END
$$;
"""

INSERT_LEG_SQL = """
INSERT INTO trade_legs (run_id, trade_id, leg, correlation_id, symbol, direction, qty,
    upbit_side, upbit_vwap_krw, upbit_fee_krw, binance_side, binance_vwap_usdt, binance_fee_usdt,
    krw_per_usdt, premium_net_pct, pnl_krw, pnl_usd, reason, tick)
VALUES (%(run_id)s, %(trade_id)s, %(leg)s, %(correlation_id)s, %(symbol)s, %(direction)s, %(qty)s,
    %(upbit_side)s, %(upbit_vwap_krw)s, %(upbit_fee_krw)s, %(binance_side)s, %(binance_vwap_usdt)s,
    %(binance_fee_usdt)s, %(krw_per_usdt)s, %(premium_net_pct)s, %(pnl_krw)s, %(pnl_usd)s, %(reason)s,
    %(tick)s)
ON CONFLICT (run_id, trade_id, leg) DO NOTHING
"""


def owner_process() -> tuple[int, str, float]:
    """(pid, host, process start epoch) of this process: what recovery needs to tell a dead owner
    from a live one, a reused pid included."""
    return os.getpid(), socket.gethostname(), psutil.Process().create_time()


class LedgerUnavailable(Exception):
    """The database cannot be reached or refused the schema; the message is one operator line."""


@dataclass(frozen=True, slots=True)
class LegRow:
    """One trade leg as stored: `leg` is `entry` or `exit`."""

    run_id: str
    trade_id: str
    leg: str
    correlation_id: str
    symbol: str
    direction: str
    qty: float
    upbit_side: str
    upbit_vwap_krw: float
    upbit_fee_krw: float
    binance_side: str
    binance_vwap_usdt: float
    binance_fee_usdt: float
    krw_per_usdt: float
    premium_net_pct: float
    pnl_krw: float | None
    pnl_usd: float | None
    reason: str
    tick: int


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its password: for error lines."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def connect(dsn: str, connect_timeout_sec: float, statement_timeout_ms: int) -> psycopg.Connection[Any]:
    """An autocommit connection whose connect and statements are both time-bounded."""
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout_sec)),
            options=f"-c statement_timeout={statement_timeout_ms}",
        )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LedgerUnavailable(f"postgres unreachable at {describe_dsn(dsn)}: {reason}") from None


class Ledger:
    """Writes runs, trade legs and events, counting what PostgreSQL acknowledged."""

    def __init__(self, dsn: str, connect_timeout_sec: float = 5.0, statement_timeout_ms: int = 5000) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout_sec
        self._statement_timeout = statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None
        self.db_inserts_ok = 0
        self.db_inserts_failed = 0
        self.event_inserts_failed = 0
        self._run_facts: dict[str, dict[str, Any]] = {}

    def open(self) -> None:
        """Connect and create the schema (idempotent, safe against concurrent engines)."""
        self._conn = connect(self._dsn, self._connect_timeout, self._statement_timeout)
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
                cur.execute(SCHEMA_SQL)
                cur.execute(UPGRADE_SQL)
                cur.execute(SYSTEM_STATE_SQL)
                cur.execute(APPEND_ONLY_SQL)
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"postgres schema setup failed at {describe_dsn(self._dsn)}: {exc}"
            ) from None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self._dsn, self._connect_timeout, self._statement_timeout)
        return self._conn

    def _execute(self, sql: str, params: dict[str, Any] | tuple[Any, ...]) -> int:
        with self._connection().cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def record_leg(self, row: LegRow) -> bool:
        """Insert one leg; True when the row is in the database (a retried duplicate counts once)."""
        params = {name: getattr(row, name) for name in LegRow.__slots__}
        try:
            self._execute(INSERT_LEG_SQL, params)
        except (psycopg.Error, LedgerUnavailable) as exc:
            self.db_inserts_failed += 1
            log.error("ledger insert failed for %s/%s/%s: %s", row.run_id, row.trade_id, row.leg, exc)
            return False
        self.db_inserts_ok += 1
        return True

    def record_event(
        self, run_id: str | None, event_type: str, payload: dict[str, Any], correlation_id: str | None = None
    ) -> bool:
        """Append one event_log row; a failure is logged and counted, never raised.

        A RUN_START payload is completed with the run's schema version, git sha and config hash
        from `record_run_start`, so every run's provenance is in the audit log.
        """
        if event_type == "RUN_START" and run_id is not None:
            payload = {**self._run_facts.get(run_id, {"schema_version": SCHEMA_VERSION}), **payload}
        try:
            self._execute(
                "INSERT INTO event_log (run_id, event_type, correlation_id, payload) VALUES (%s, %s, %s, %s)",
                (run_id, event_type, correlation_id, Jsonb(payload)),
            )
        except (psycopg.Error, LedgerUnavailable) as exc:
            self.event_inserts_failed += 1
            log.error("event_log insert failed (%s): %s", event_type, exc)
            return False
        return True

    def record_run_start(
        self, run_id: str, phase: str, mode: str, started_at: datetime, seed: int, git_sha: str | None,
        config_hash: str,
    ) -> None:  # fmt: skip
        """Register the run; raises LedgerUnavailable, because a run must not start unrecorded."""
        try:
            self._execute(
                "INSERT INTO runs (run_id, phase, mode, started_at, status, seed, git_sha, config_hash,"
                " schema_version, pid, host, process_started)"
                " VALUES (%s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s, %s)",
                (
                    run_id,
                    phase,
                    mode,
                    started_at,
                    seed,
                    git_sha,
                    config_hash,
                    SCHEMA_VERSION,
                    *owner_process(),
                ),
            )
        except psycopg.Error as exc:
            raise LedgerUnavailable(f"postgres refused the run registration: {exc}") from None
        self._run_facts[run_id] = {
            "schema_version": SCHEMA_VERSION, "git_sha": git_sha, "config_hash": config_hash, "mode": mode,
        }  # fmt: skip

    def record_run_end(
        self,
        run_id: str,
        status: str,
        stop_reason: str,
        exit_code: int,
        closed_trades: int,
        ended_at: datetime,
    ) -> bool:
        """Close the run's registry row; a failure is logged, the evidence still says what happened."""
        try:
            self._execute(
                "UPDATE runs SET status=%s, stop_reason=%s, exit_code=%s, closed_trades=%s, ended_at=%s"
                " WHERE run_id=%s",
                (status, stop_reason, exit_code, closed_trades, ended_at, run_id),
            )
        except (psycopg.Error, LedgerUnavailable) as exc:
            log.error("run registry update failed for %s: %s", run_id, exc)
            return False
        return True

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
