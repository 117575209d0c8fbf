-- The ledger schema as the engine built it at schema version 4 (before the schema kept a
-- record of its migrations), in the order it ran: the ledger's tables, their upgrades, the
-- kill switch table, the append-only triggers, and the alert deliveries table.

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

CREATE TABLE IF NOT EXISTS system_state (
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

CREATE TABLE IF NOT EXISTS alert_deliveries (
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
CREATE INDEX IF NOT EXISTS alert_deliveries_run_idx ON alert_deliveries (run_id, status);
