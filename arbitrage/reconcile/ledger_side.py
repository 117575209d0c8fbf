"""What the run says it did: its `runs` row, its trade_legs rows and the order ids in its event log.

The event log names the venue orders of each leg (`TRADE_OPEN`/`TRADE_CLOSE` carry `order_ids`;
`LEG_UNWOUND` and `EXIT_FAILED` carry the legs that did fill); trade_legs carries the booked
quantities, prices and fees. Reconciliation needs both: an order the event log names but the
ledger lacks is as much a finding as an order neither knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from arbitrage.ledger import connect
from evidence.ledger_tables import EVENT_LOG, RUNS, TRADE_LEGS
from evidence.order_trail_rule import ORDER_DONE, ORDER_SENT, UnbookedOrder, unbooked_orders

LEG_COLUMNS = (
    "trade_id", "leg", "correlation_id", "symbol", "qty", "upbit_side", "upbit_vwap_krw", "upbit_fee_krw",
    "binance_side", "binance_vwap_usdt", "binance_fee_usdt", "krw_per_usdt", "pnl_usd", "upbit_qty",
)  # fmt: skip


class RunNotFound(Exception):
    """No such run (or no live run at all) in the ledger; the message is the operator's line."""


@dataclass
class RunLedger:
    """One run as its ledger and event log record it."""

    run_id: str
    mode: str
    started_at: datetime
    ended_at: datetime | None
    legs: list[dict[str, Any]] = field(default_factory=list)
    order_ids: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(correlation_id, "entry"|"exit") -> {"upbit": id, "binance": id, "upbit_qty": qty}."""
    side_orders: list[dict[str, Any]] = field(default_factory=list)
    """Filled legs of unwound entries and failed exits: {"venue", "side", "qty", "vwap", "order_id", ...}."""
    start_balances: dict[str, dict[str, float]] | None = None
    """Each venue's total per asset before the run's first order (its `LIVE_START` event)."""
    start_balances_note: str | None = None
    """Why there are no start balances: none recorded, or the error the run met reading them."""
    unbooked: list[UnbookedOrder] = field(default_factory=list)
    """Orders the run sent and never booked, by its order trail (`evidence.order_trail_rule`)."""


def latest_live_run(dsn: str) -> str:
    """The id of the most recently started live run."""
    with connect(dsn, 5.0, 5000) as conn:
        row = conn.execute(
            f"SELECT run_id FROM {RUNS} WHERE mode = 'live' ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    if row is None:
        raise RunNotFound("no live run in the ledger: nothing to reconcile (give --run RUN_ID)")
    return str(row[0])


def load_run(dsn: str, run_id: str) -> RunLedger:
    """The run's row, legs and order-bearing events."""
    with connect(dsn, 5.0, 5000) as conn:
        row = conn.execute(
            f"SELECT mode, started_at, ended_at FROM {RUNS} WHERE run_id = %s", (run_id,)
        ).fetchone()
        if row is None:
            raise RunNotFound(f"--run {run_id!r}: no such run in the ledger")
        legs = conn.execute(
            f"SELECT {', '.join(LEG_COLUMNS)} FROM {TRADE_LEGS} WHERE run_id = %s ORDER BY id", (run_id,)
        ).fetchall()
        events = conn.execute(
            f"SELECT event_type, correlation_id, payload FROM {EVENT_LOG} WHERE run_id = %s"
            " AND event_type IN ('TRADE_OPEN', 'TRADE_CLOSE', 'LEG_UNWOUND', 'EXIT_FAILED', 'LIVE_START',"
            " 'ORDER_SENT', 'ORDER_DONE')"
            " ORDER BY id",
            (run_id,),
        ).fetchall()
    run = RunLedger(run_id, str(row[0]), row[1], row[2])
    for values in legs:
        leg = dict(zip(LEG_COLUMNS, values, strict=True))
        run.legs.append({k: float(v) if k not in ("trade_id", "leg", "correlation_id", "symbol", "upbit_side",
                                                  "binance_side") and v is not None else v
                         for k, v in leg.items()})  # fmt: skip
    run.start_balances_note = "the run recorded no venue balances at its start (LIVE_START)"
    for kind, correlation_id, payload in events:
        if kind == "LIVE_START":
            _start_balances(run, payload)
        elif kind in (ORDER_SENT, ORDER_DONE):
            continue
        elif kind in ("TRADE_OPEN", "TRADE_CLOSE") and payload.get("order_ids"):
            leg_kind = "entry" if kind == "TRADE_OPEN" else "exit"
            run.order_ids[(correlation_id, leg_kind)] = {
                **payload["order_ids"],
                "symbol": payload.get("symbol"),
            }
        else:
            for key in ("filled", "unwind"):
                filled = payload.get(key)
                if filled and filled.get("order_id"):
                    run.side_orders.append({**filled, "symbol": payload.get("symbol"), "event": kind,
                                            "correlation_id": correlation_id})  # fmt: skip
    run.side_orders = _not_in_trades(run)
    run.unbooked = unbooked_orders((kind, payload) for kind, _, payload in events)
    return run


def _not_in_trades(run: RunLedger) -> list[dict[str, Any]]:
    """The side fills no trade leg accounts for: a failed exit's filled leg that its retry completed
    is named by the TRADE_CLOSE as well, and counts once."""
    in_trades = {(venue, str(ids[venue])) for ids in run.order_ids.values() for venue in ("upbit", "binance")
                 if ids.get(venue) is not None}  # fmt: skip
    return [s for s in run.side_orders if (str(s.get("venue")), str(s.get("order_id"))) not in in_trades]


def _start_balances(run: RunLedger, payload: dict[str, Any]) -> None:
    balances = payload.get("balances")
    if isinstance(balances, dict) and all(isinstance(v, dict) for v in balances.values()):
        run.start_balances = {
            venue: {a: float(q) for a, q in held.items()} for venue, held in balances.items()
        }
        run.start_balances_note = None
    elif payload.get("balances_error"):
        run.start_balances_note = (
            f"the run could not read the venue balances at its start: {payload['balances_error']}"
        )
