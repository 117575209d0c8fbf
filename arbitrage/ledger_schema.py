"""The ledger's tables, and how an engine creates or upgrades them without blocking another.

`event_log` and `system_state` are append-only, enforced by the database itself: triggers
reject UPDATE, DELETE and TRUNCATE. The triggers, the newer columns and the indexes are created
only when missing (no DROP), so starting an engine never takes a lock that would queue behind
another engine's open (or frozen) transaction.
"""

from __future__ import annotations

from typing import Any

import psycopg

SCHEMA_VERSION = 4
SCHEMA_LOCK_KEY = 0x4152_4231
"""Advisory lock key: concurrent engines create the schema once."""


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
    upbit_qty           numeric,
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
CREATE TABLE IF NOT EXISTS live_arms (
    armed_at        bigint PRIMARY KEY,
    run_id          text NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now()
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
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'trade_legs'
                     AND column_name = 'upbit_qty') THEN
        ALTER TABLE trade_legs ADD COLUMN upbit_qty numeric;
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
crash recovery, an event's idempotency key for journal replay, a leg's Upbit fill quantity for the
hedge residual; null in rows written before it), each added only when missing:
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


def owned_by_another(cur: psycopg.Cursor[Any], table: str) -> bool:
    """True when `table` exists and the connected role does not own it: its DDL is the owner's job
    (the engine running as the application role, `arbitrage.app_role`)."""
    cur.execute(
        "SELECT NOT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%s)",
        (table,),
    )
    row = cur.fetchone()
    return bool(row is not None and row[0])
