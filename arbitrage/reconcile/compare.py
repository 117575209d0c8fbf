"""The comparison itself: a run's ledger and event log against both venues, within stated tolerances.

Pure: it takes what `ledger_side` and `venues` loaded and returns the report document. Every
finding is also one line in `problems`; the run reconciles only when that list is empty.

Findings: a leg's venue order the venue does not know (missing on the venue); a venue order since
the run began that neither the ledger nor the event log accounts for, or that the event log names
but trade_legs lacks (missing in the ledger); a field that differs beyond its tolerance (side,
quantity, price, fee); an Upbit fill whose quantity drifts from the Binance leg by more than
`UPBIT_DRIFT_TOLERANCE` (Upbit market buys are placed by KRW cost); any open order; any open
position (a trade with no exit, or a venue's net quantity of the run's orders beyond tolerance);
a trade's PnL from the venues' fills, or the run's reported PnL, off the ledger's by more than
`PNL_TOLERANCE_USD`; a balance that changed since the run's start by other than its fills imply
(`balances`), or no start balances to tell. Beside the findings, `order_trail` says for each order
the run sent and never booked (a crash between an order and its leg) whether the venue has it:
one it has is a venue order missing in the ledger as well, one it lacks left nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from arbitrage.reconcile.balances import Implied, compare_balances, implied_changes
from arbitrage.reconcile.ledger_side import RunLedger
from arbitrage.reconcile.venues import VenueOrder, VenueState

VENUES: Final = ("upbit", "binance")
REL_TOLERANCE: Final = 1e-6
"""Quantities, prices and fees: the ledger books the venue's own numbers, so only rounding differs."""
FEE_ABS_TOLERANCE: Final = 1e-6
UPBIT_DRIFT_TOLERANCE: Final = 0.02
"""|Upbit qty - Binance qty| / Binance qty of one leg, and a symbol's Upbit net over its entries."""
PNL_TOLERANCE_USD: Final = 0.01
TOLERANCES: Final = {
    "quantity_price_fee_rel": REL_TOLERANCE,
    "fee_abs": FEE_ABS_TOLERANCE,
    "upbit_drift_rel": UPBIT_DRIFT_TOLERANCE,
    "pnl_usd": PNL_TOLERANCE_USD,
}


def _close(a: float, b: float, rel: float = REL_TOLERANCE, absolute: float = 0.0) -> bool:
    return abs(a - b) <= max(absolute, rel * max(abs(a), abs(b)))


def _cash(order: VenueOrder) -> float:
    """Quote cash the order moved: + for a sell, - for a buy, fee always paid."""
    return (order.cost if order.side == "sell" else -order.cost) - order.fee


@dataclass
class _Book:
    """Venue orders by id, and which of them the run accounts for."""

    orders: dict[str, VenueOrder]
    seen: set[str]

    def take(self, order_id: str | None) -> VenueOrder | None:
        found = self.orders.get(str(order_id)) if order_id is not None else None
        if found is not None:
            self.seen.add(found.id)
        return found


def _leg_check(
    venue: str, order: VenueOrder | None, row: Mapping[str, Any] | None, ids: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    order_id = ids.get(venue)
    if order is None:
        return {"status": "missing_on_venue", "order_id": order_id}, [
            f"{where} {venue}: order {order_id} missing on the venue"
        ]
    result: dict[str, Any] = {
        "status": "matched",
        "order_id": order.id,
        "client_order_id": order.client_id,
        "venue": {"side": order.side, "qty": order.qty, "price": order.avg_price, "fee": order.fee},
    }
    if row is None:
        result["status"] = "missing_in_ledger"
        return result, [f"{where} {venue}: order {order.id} named by event_log has no trade_legs row"]
    quote = "krw" if venue == "upbit" else "usdt"
    booked = {
        "side": row[f"{venue}_side"],
        "qty": _booked_upbit_qty(row, ids) if venue == "upbit" else row["qty"],
        "price": row[f"{venue}_vwap_{quote}"],
        "fee": row[f"{venue}_fee_{quote}"],
    }
    result["ledger"] = booked
    differs = [name for name in ("qty", "price") if not _close(order_to(order, name), booked[name])]
    if not _close(order.fee, booked["fee"], absolute=FEE_ABS_TOLERANCE):
        differs.append("fee")
    if order.side != booked["side"]:
        differs.insert(0, "side")
    if not differs:
        return result, []
    result["status"] = "mismatch"
    result["differs"] = differs
    shown = ", ".join(f"{n} venue {result['venue'][n]} ledger {booked[n]}" for n in differs)
    return result, [f"{where} {venue}: order {order.id} differs: {shown}"]


def _booked_upbit_qty(row: Mapping[str, Any], ids: Mapping[str, Any]) -> float:
    """The ledger's Upbit quantity; rows older than the `upbit_qty` column have it in the event only."""
    booked = row.get("upbit_qty")
    return float(booked if booked is not None else ids.get("upbit_qty") or 0.0)


def order_to(order: VenueOrder, name: str) -> float:
    """The venue order's quantity or average price."""
    return order.qty if name == "qty" else order.avg_price


def _trades(
    run: RunLedger, books: Mapping[str, _Book], problems: list[str]
) -> tuple[list[dict[str, Any]], float]:
    rows = {(leg["correlation_id"], leg["leg"]): leg for leg in run.legs}
    by_trade: dict[str, dict[str, Any]] = {}
    for key in sorted(set(rows) | set(run.order_ids), key=lambda k: (k[0], k[1] != "entry")):
        correlation_id, leg = key
        row, ids = rows.get(key), run.order_ids.get(key)
        symbol = row["symbol"] if row else (ids or {}).get("symbol")
        trade = by_trade.setdefault(
            correlation_id, {"correlation_id": correlation_id, "symbol": symbol, "legs": {}}
        )
        where = f"trade {correlation_id} {leg}"
        if ids is None:
            trade["legs"][leg] = {"status": "no_event"}
            problems.append(f"{where}: in trade_legs but event_log names no venue orders")
            continue
        check: dict[str, Any] = {}
        orders = {venue: books[venue].take(ids.get(venue)) for venue in VENUES}
        for venue in VENUES:
            check[venue], found = _leg_check(venue, orders[venue], row, ids, where)
            problems.extend(found)
        upbit, binance = orders["upbit"], orders["binance"]
        if upbit is not None and binance is not None and binance.qty > 0:
            drift = (upbit.qty - binance.qty) / binance.qty
            check["upbit_qty_drift_rel"] = drift
            if abs(drift) > UPBIT_DRIFT_TOLERANCE:
                problems.append(
                    f"{where}: upbit quantity {upbit.qty} drifts {drift:+.2%} from binance "
                    f"{binance.qty} (tolerance {UPBIT_DRIFT_TOLERANCE:.0%})"
                )
        check["_orders"] = orders
        trade["legs"][leg] = check
    venue_pnl_total = 0.0
    for trade in by_trade.values():
        _trade_outcome(trade, rows, problems)
        venue_pnl_total += trade.get("pnl_venue_usd") or 0.0
    return list(by_trade.values()), venue_pnl_total


def _trade_outcome(
    trade: dict[str, Any], rows: Mapping[tuple[str, str], Mapping[str, Any]], problems: list[str]
) -> None:
    """The Upbit remainder and the PnL of a round trip, from the venues' fills."""
    corr = trade["correlation_id"]
    entry, exit_ = trade["legs"].get("entry", {}), trade["legs"].get("exit", {})
    entry_orders, exit_orders = entry.pop("_orders", {}), exit_.pop("_orders", {})
    if "exit" not in trade["legs"]:
        trade["status"] = "open"
        problems.append(f"trade {corr}: open position ({trade['symbol']}), no exit leg")
        return
    trade["status"] = "closed"
    upbit_in, upbit_out = entry_orders.get("upbit"), exit_orders.get("upbit")
    binance_out = exit_orders.get("binance")
    if upbit_in is not None and upbit_out is not None:
        signed = upbit_in.qty if upbit_in.side == "buy" else -upbit_in.qty
        remainder = signed + (upbit_out.qty if upbit_out.side == "buy" else -upbit_out.qty)
        trade["upbit_remainder_qty"] = remainder
        if binance_out is not None:
            trade["upbit_remainder_usd"] = remainder * binance_out.avg_price
    fills = [o for o in (*entry_orders.values(), *exit_orders.values()) if o is not None]
    exit_row = rows.get((corr, "exit"))
    if len(fills) != 4 or exit_row is None:
        return
    krw = sum(_cash(o) for o in fills if o.venue == "upbit")
    usdt = sum(_cash(o) for o in fills if o.venue == "binance")
    venue_pnl = krw / exit_row["krw_per_usdt"] + usdt
    trade["pnl_venue_usd"] = venue_pnl
    trade["pnl_ledger_usd"] = exit_row["pnl_usd"]
    if exit_row["pnl_usd"] is None or abs(venue_pnl - exit_row["pnl_usd"]) > PNL_TOLERANCE_USD:
        problems.append(
            f"trade {corr}: PnL from the venues {venue_pnl:.4f} USD, ledger {exit_row['pnl_usd']} USD"
        )


def _positions(book: _Book, venue: str, problems: list[str]) -> dict[str, dict[str, float]]:
    """Net quantity per symbol of the run's orders on one venue."""
    net: dict[str, dict[str, float]] = {}
    for order_id in book.seen:
        order = book.orders[order_id]
        entry = net.setdefault(order.symbol, {"net_qty": 0.0, "gross_qty": 0.0})
        entry["net_qty"] += order.qty if order.side == "buy" else -order.qty
        entry["gross_qty"] += order.qty
    allowed = UPBIT_DRIFT_TOLERANCE if venue == "upbit" else REL_TOLERANCE
    for symbol, entry in sorted(net.items()):
        bound = allowed * entry["gross_qty"] / 2
        if abs(entry["net_qty"]) > bound:
            problems.append(
                f"{venue}: open position {entry['net_qty']:+.8f} {symbol} from the run's orders "
                f"(tolerance {bound:.8f})"
            )
    return net


def _balance_check(
    run: RunLedger, venue: str, state: VenueState, implied: Implied, problems: list[str]
) -> dict[str, Any] | None:
    start = (run.start_balances or {}).get(venue)
    if start is None:
        problems.append(f"{venue}: balances not checked: {run.start_balances_note or 'no start balances'}")
        return None
    return compare_balances(venue, start, state.balances, implied, problems)


def _order_trail(run: RunLedger, venues: Mapping[str, VenueState]) -> list[dict[str, Any]]:
    """Each unbooked order of the run, with the venue's order id for its client order id (or None)."""
    by_client = {(v, o.client_id): o.id for v in VENUES for o in venues[v].orders if o.client_id}
    return [
        {"order": order.describe(), "venue": order.venue, "client_order_id": order.client_order_id,
         "on_venue": by_client.get((order.venue, order.client_order_id))}
        for order in run.unbooked
    ]  # fmt: skip


def reconcile(
    run: RunLedger, venues: Mapping[str, VenueState], reported_pnl_usd: float | None
) -> dict[str, Any]:
    """The reconciliation document; `ok` is True only when `problems` is empty."""
    problems: list[str] = []
    books = {v: _Book({o.id: o for o in venues[v].orders}, set()) for v in VENUES}
    trades, venue_pnl = _trades(run, books, problems)
    for side in run.side_orders:
        venue = str(side.get("venue"))
        if venue in books and books[venue].take(side.get("order_id")) is None:
            problems.append(
                f"{side['event']} {side.get('correlation_id')} {venue}: order {side.get('order_id')} "
                "missing on the venue"
            )
    report: dict[str, Any] = {"venues": {}}
    implied = implied_changes(run.legs, run.side_orders)
    for venue in VENUES:
        book, state = books[venue], venues[venue]
        unknown = [o for o in state.orders if o.id not in book.seen]
        for order in unknown:
            problems.append(
                f"{venue}: order {order.id} ({order.side} {order.qty} {order.symbol}, client order id "
                f"{order.client_id}) missing in the ledger"
            )
        for order in state.open_orders:
            problems.append(
                f"{venue}: open order {order.id} ({order.side} {order.symbol}, client order id "
                f"{order.client_id})"
            )
        report["venues"][venue] = {
            "balances": state.balances,
            "orders_since_run_start": len(state.orders),
            "matched": len(book.seen),
            "missing_in_ledger": [o.to_json() for o in unknown],
            "open_orders": [o.to_json() for o in state.open_orders],
            "positions": _positions(book, venue, problems),
            "balance_check": _balance_check(run, venue, state, implied, problems),
        }
    report["order_trail"] = _order_trail(run, venues)
    ledger_pnl = sum(leg["pnl_usd"] or 0.0 for leg in run.legs if leg["leg"] == "exit")
    if reported_pnl_usd is not None and abs(reported_pnl_usd - ledger_pnl) > PNL_TOLERANCE_USD:
        problems.append(f"run PnL reported {reported_pnl_usd} USD, ledger {ledger_pnl:.4f} USD")
    report.update(
        run_id=run.run_id,
        ok=not problems,
        tolerances=dict(TOLERANCES),
        trades=trades,
        pnl={"reported_usd": reported_pnl_usd, "ledger_usd": ledger_pnl, "venues_usd": venue_pnl},
        problems=problems,
    )
    return report
