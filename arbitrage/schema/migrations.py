"""Every table, column, index and trigger of the ledger database, as numbered migrations.

Migrations 1 to 4 are the schema versions earlier engines recorded in `runs.schema_version`;
their statements are written so that applying them to a database an earlier engine built (with
no `schema_version` record) changes nothing that is already there. Columns, indexes and
triggers are added only when missing, because ALTER TABLE and CREATE INDEX lock the table even
when there is nothing to do, and must not queue behind another engine's open (or frozen)
transaction. A new migration goes at the end with the next number; a released one never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from evidence.ledger_tables import (
    ALERT_DELIVERIES,
    APPEND_ONLY,
    EVENT_LOG,
    LIVE_ARMS,
    RUNS,
    SYSTEM_STATE,
    TRADE_LEGS,
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: applied once, in order, and recorded by number and name."""

    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        """How an operator line names it, e.g. `0004_upbit_qty`."""
        return f"{self.version:04d}_{self.name}"


def _add_column(table: str, column: str, sql_type: str) -> str:
    return f"""
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = '{table}'
                     AND column_name = '{column}') THEN
        ALTER TABLE {table} ADD COLUMN {column} {sql_type};
    END IF;"""


def _index(name: str, table: str, columns: str, unique: bool = False) -> str:
    return f"""
    IF to_regclass('{name}') IS NULL THEN
        CREATE {"UNIQUE " if unique else ""}INDEX {name} ON {table} ({columns});
    END IF;"""


def _guarded(*steps: str) -> str:
    return "DO $$\nBEGIN" + "".join(steps) + "\nEND\n$$;\n"


_LEDGER: Final = f"""
CREATE TABLE IF NOT EXISTS {RUNS} (
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
    schema_version  integer NOT NULL
);
CREATE TABLE IF NOT EXISTS {TRADE_LEGS} (
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
CREATE TABLE IF NOT EXISTS {EVENT_LOG} (
    id              bigserial PRIMARY KEY,
    ts              timestamptz NOT NULL DEFAULT now(),
    run_id          text,
    event_type      text NOT NULL,
    correlation_id  text,
    payload         jsonb NOT NULL DEFAULT '{{}}'::jsonb
);
""" + _guarded(
    _index("trade_legs_run_idx", TRADE_LEGS, "run_id"),
    _index("event_log_run_idx", EVENT_LOG, "run_id"),
)

_TRIGGERS: Final = f"""
DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY[{", ".join(f"'{table}'" for table in APPEND_ONLY)}] LOOP
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

_APPEND_ONLY: Final = (
    f"""
CREATE TABLE IF NOT EXISTS {SYSTEM_STATE} (
    id           bigserial PRIMARY KEY,
    ts           timestamptz NOT NULL DEFAULT clock_timestamp(),
    kill_switch  text NOT NULL CHECK (kill_switch IN ('ACTIVE', 'INACTIVE')),
    reason       text NOT NULL CHECK (length(btrim(reason)) > 0),
    changed_by   text NOT NULL CHECK (length(btrim(changed_by)) > 0),
    run_id       text
);
CREATE OR REPLACE FUNCTION arb_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""
    + _TRIGGERS
    + _guarded(_index("event_log_correlation_idx", EVENT_LOG, "correlation_id"))
)

_RUN_OWNER_AND_EVENT_UID: Final = _guarded(
    _add_column(RUNS, "pid", "integer"),
    _add_column(RUNS, "host", "text"),
    _add_column(RUNS, "process_started", "double precision"),
    _add_column(EVENT_LOG, "event_uid", "text"),
    _index("event_log_uid_idx", EVENT_LOG, "event_uid", unique=True),
)

_UPBIT_QTY: Final = _guarded(_add_column(TRADE_LEGS, "upbit_qty", "numeric"))

_ALERTS_AND_ARMS: Final = f"""
CREATE TABLE IF NOT EXISTS {ALERT_DELIVERIES} (
    id           bigserial PRIMARY KEY,
    ts           timestamptz NOT NULL DEFAULT now(),
    run_id       text,
    alert_id     text NOT NULL,
    event        text NOT NULL,
    status       text NOT NULL CHECK (status IN ('SENT', 'RETRY', 'DLQ', 'DISABLED')),
    attempt      integer NOT NULL CHECK (attempt >= 0),
    http_status  integer,
    error        text
);
CREATE TABLE IF NOT EXISTS {LIVE_ARMS} (
    armed_at        bigint PRIMARY KEY,
    run_id          text NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);
""" + _guarded(_index("alert_deliveries_run_idx", ALERT_DELIVERIES, "run_id, status"))

_EVENT_KINDS_BY_RUN: Final = _guarded(_index("event_log_run_type_idx", EVENT_LOG, "run_id, event_type"))

MIGRATIONS: Final = (
    Migration(1, "ledger", _LEDGER),
    Migration(2, "append_only", _APPEND_ONLY),
    Migration(3, "run_owner_and_event_uid", _RUN_OWNER_AND_EVENT_UID),
    Migration(4, "upbit_qty", _UPBIT_QTY),
    Migration(5, "alerts_and_arms", _ALERTS_AND_ARMS),
    Migration(6, "event_kinds_by_run", _EVENT_KINDS_BY_RUN),
)
"""In order: `runs`, `trade_legs`, `event_log`; `system_state` and the append-only triggers; a
run's owner process (crash recovery) and an event's idempotency key (journal replay); a leg's
Upbit fill quantity (hedge residual; null in rows written before it); `alert_deliveries` and
`live_arms`; an index of each run's events by kind (the order trail query of preflight and recovery
looks a run's ORDER_SENT, NOTHING_LEFT_OPEN and POSITIONS_RECONCILED up by it)."""

SCHEMA_VERSION: Final = MIGRATIONS[-1].version
"""The version this engine needs and records (in `runs`, RUN_START and the manifest)."""
