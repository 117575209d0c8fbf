-- The ledger schema as the first engine built it (schema version 1): three tables, no triggers.

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
    schema_version  integer NOT NULL
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
CREATE INDEX IF NOT EXISTS trade_legs_run_idx ON trade_legs (run_id);
CREATE TABLE IF NOT EXISTS event_log (
    id              bigserial PRIMARY KEY,
    ts              timestamptz NOT NULL DEFAULT now(),
    run_id          text,
    event_type      text NOT NULL,
    correlation_id  text,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS event_log_run_idx ON event_log (run_id);
