"""Ledger records and the one idempotent way each is written to PostgreSQL.

A record is a plain dict, exactly as the journal holds it: `op` says what it is (`run_start`,
`leg`, `event`, `run_end`), `seq` numbers it within its journal and `uid` (journal run id and
seq) names it for good. `apply_record` writes it so that
writing it twice changes nothing: legs are unique on (run_id, trade_id, leg), journaled events
on `event_uid` (the record's uid), the run row on its key, and the final update is a plain SET.
The live ledger and the replay of a journal after a crash both go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from evidence.ledger_tables import EVENT_LOG, RUNS, TRADE_LEGS

if TYPE_CHECKING:
    from arbitrage.execution import PairFill

RUN_START = "run_start"
LEG = "leg"
EVENT = "event"
RUN_END = "run_end"

INSERT_LEG_SQL = f"""
INSERT INTO {TRADE_LEGS} (run_id, trade_id, leg, correlation_id, symbol, direction, qty,
    upbit_side, upbit_vwap_krw, upbit_fee_krw, binance_side, binance_vwap_usdt, binance_fee_usdt,
    krw_per_usdt, premium_net_pct, pnl_krw, pnl_usd, reason, tick, upbit_qty)
VALUES (%(run_id)s, %(trade_id)s, %(leg)s, %(correlation_id)s, %(symbol)s, %(direction)s, %(qty)s,
    %(upbit_side)s, %(upbit_vwap_krw)s, %(upbit_fee_krw)s, %(binance_side)s, %(binance_vwap_usdt)s,
    %(binance_fee_usdt)s, %(krw_per_usdt)s, %(premium_net_pct)s, %(pnl_krw)s, %(pnl_usd)s, %(reason)s,
    %(tick)s, %(upbit_qty)s)
ON CONFLICT (run_id, trade_id, leg) DO NOTHING
"""

INSERT_EVENT_SQL = f"""
INSERT INTO {EVENT_LOG} (run_id, event_type, correlation_id, payload, event_uid)
VALUES (%(run_id)s, %(event_type)s, %(correlation_id)s, %(payload)s, %(event_uid)s)
ON CONFLICT (event_uid) DO NOTHING
"""

INSERT_RUN_SQL = f"""
INSERT INTO {RUNS} (run_id, phase, mode, started_at, status, seed, git_sha, config_hash, schema_version,
    pid, host, process_started)
VALUES (%(run_id)s, %(phase)s, %(mode)s, %(started_at)s, 'running', %(seed)s, %(git_sha)s, %(config_hash)s,
    %(schema_version)s, %(pid)s, %(host)s, %(process_started)s)
ON CONFLICT (run_id) DO NOTHING
"""

FINISH_RUN_SQL = f"""
UPDATE {RUNS} SET status=%(status)s, stop_reason=%(stop_reason)s, exit_code=%(exit_code)s,
    closed_trades=%(closed_trades)s, ended_at=%(ended_at)s
WHERE run_id=%(run_id)s AND status='running'
"""
"""A final status is never overwritten: a replayed duplicate, or a run already judged crashed,
changes nothing."""


@dataclass(frozen=True, slots=True)
class LegRow:
    """One trade leg as stored: `leg` is `entry` or `exit`.

    `qty` is the Binance leg's quantity; `upbit_qty` the Upbit leg's own (a live Upbit market buy
    spends KRW, so its quantity differs by the price it filled at). Their difference is the leg's
    hedge residual (`arbitrage.residual`); None in rows written before the column existed.
    """

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
    upbit_qty: float | None = None

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LEG_FIELDS}

    @classmethod
    def of_fill(
        cls, run_id: str, trade_id: str, correlation_id: str, symbol: str, direction: str, leg: str,
        fill: PairFill, reason: str, tick: int, pnl: tuple[float, float] | None = None,
    ) -> LegRow:  # fmt: skip
        """The row for one leg of a position, from the fill of both its venues' orders."""
        quote = fill.quote
        return cls(
            run_id=run_id,
            trade_id=trade_id,
            leg=leg,
            correlation_id=correlation_id,
            symbol=symbol,
            direction=direction,
            qty=fill.binance.qty,
            upbit_side=fill.upbit.side,
            upbit_vwap_krw=fill.upbit.vwap,
            upbit_fee_krw=fill.upbit.fee,
            binance_side=fill.binance.side,
            binance_vwap_usdt=fill.binance.vwap,
            binance_fee_usdt=fill.binance.fee,
            krw_per_usdt=quote.krw_per_usdt,
            premium_net_pct=quote.net_pct,
            pnl_krw=None if pnl is None else pnl[0],
            pnl_usd=None if pnl is None else pnl[1],
            reason=reason,
            tick=tick,
            upbit_qty=fill.upbit.qty,
        )


LEG_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(LegRow))


def statement_of(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The idempotent statement that writes `record`, and its parameters."""
    op = record["op"]
    if op == LEG:
        return INSERT_LEG_SQL, {"upbit_qty": None, **record["row"], "run_id": record["run_id"]}
    if op == EVENT:
        params = {
            "run_id": record["run_id"],
            "event_type": record["event_type"],
            "correlation_id": record.get("correlation_id"),
            "payload": Jsonb(record.get("payload") or {}),
            "event_uid": record.get("uid"),
        }
        return INSERT_EVENT_SQL, params
    if op == RUN_START:
        return INSERT_RUN_SQL, record
    if op == RUN_END:
        return FINISH_RUN_SQL, record
    raise ValueError(f"unknown ledger record op {op!r}")


def apply_record(conn: psycopg.Connection[Any], record: dict[str, Any]) -> int:
    """Write one record idempotently; returns the rows it added or changed (0 for a replayed duplicate)."""
    statement, params = statement_of(record)
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return max(cur.rowcount, 0)


EVENT_COLUMNS = ("run_id", "event_type", "correlation_id", "payload", "event_uid")


def _multi_row(table: str, columns: tuple[str, ...], rows: int, conflict: str) -> str:
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    values = ", ".join([one] * rows)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} ON CONFLICT {conflict} DO NOTHING"


def _leg_values(record: dict[str, Any]) -> tuple[Any, ...]:
    row = {**record["row"], "run_id": record["run_id"]}
    return tuple(row.get(name) for name in LEG_FIELDS)


def _event_values(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["run_id"], record["event_type"], record.get("correlation_id"),
        Jsonb(record.get("payload") or {}), record.get("uid"),
    )  # fmt: skip


def apply_batch(conn: psycopg.Connection[Any], records: list[dict[str, Any]]) -> None:
    """Write `records` idempotently: the legs in one multi-row INSERT, the events in another, a run
    row before them and its final update after. The caller owns the transaction, so a batch is
    acknowledged whole or not at all."""
    legs = [_leg_values(record) for record in records if record["op"] == LEG]
    events = [_event_values(record) for record in records if record["op"] == EVENT]
    with conn.cursor() as cur:
        for record in records:
            if record["op"] == RUN_START:
                cur.execute(INSERT_RUN_SQL, record)
        if legs:
            statement = _multi_row("trade_legs", LEG_FIELDS, len(legs), "(run_id, trade_id, leg)")
            cur.execute(statement, [value for values in legs for value in values])
        if events:
            statement = _multi_row("event_log", EVENT_COLUMNS, len(events), "(event_uid)")
            cur.execute(statement, [value for values in events for value in values])
        for record in records:
            if record["op"] == RUN_END:
                cur.execute(FINISH_RUN_SQL, record)


def describe_record(record: dict[str, Any]) -> str:
    """A record as an operator reads it: `leg <run>/<trade>/<leg>`, `event <type>`, `run_end <run>`."""
    op = record["op"]
    if op == LEG:
        row = record["row"]
        return f"leg {record['run_id']}/{row['trade_id']}/{row['leg']}"
    if op == EVENT:
        return f"event {record['event_type']}"
    return f"{op} {record.get('run_id')}"
