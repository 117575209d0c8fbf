"""One tick of trading: intents from the strategy, fills from the executor, rows to the ledger.

This is the part of the loop that touches money. It keeps the promise the DB invariant
checks: every position that closes has exactly one entry row and one exit row, and every
position still open at stop is flattened before the final flush, or reported as left open.

Entries are held, never refused by a trip, when the run already holds `max_open_positions`
(`guards.max_open_positions`): the best premiums of a tick are taken first and the rest are
counted (`entries_held_at_position_cap`) and traced, so the OPEN_POSITIONS guard stays a backstop
that trips only if this hold fails.

The executor is the paper one or the live one (`Executor`). A live exit is sized from the
position's filled entry legs; when it fails, the position stays open (an EXIT_FAILED event and
an ERROR record it) so that a later exit or the flatten can retry. A leg that filled in a failed
exit is not placed again by the retry, which would open the opposite position on its venue: the
retry places the other leg, and its TRADE_CLOSE names both. Events carry the venues' order ids
(None on paper).
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol, cast

from arbitrage.execution import LegFailure, LegFill, PairFill, Rejected
from arbitrage.flatten_lead import FlattenLead
from arbitrage.ledger import Ledger, LegRow
from arbitrage.market.book import MarketSnapshot
from arbitrage.market.last_books import LastUsableBooks
from arbitrage.portfolio import ClosedTrade, Portfolio, Position
from arbitrage.residual import ResidualTally
from arbitrage.strategy import EntryIntent, ExitIntent, Strategy, exit_quote

if TYPE_CHECKING:
    from arbitrage.decision_trace import DecisionTracer

log = logging.getLogger("arbitrage.trader")

FLATTEN = "flatten"
GUARD = "guard"


def flatten_reason(stop_reason: str | None) -> str:
    """The exit reason the stop-time flatten records: `guard` after a guard trip, else `flatten`."""
    return GUARD if stop_reason is not None and stop_reason.startswith("GUARD_") else FLATTEN


class Executor(Protocol):
    """What the trader needs from an executor (`PaperExecutor` or `LiveExecutor`)."""

    def enter(self, intent: EntryIntent, snapshot: MarketSnapshot) -> PairFill | LegFailure | Rejected: ...

    def exit(self, intent: ExitIntent) -> PairFill: ...

    @property
    def venue_wait_ms(self) -> float:
        """Running total of the time spent waiting on venues for orders and fills."""
        ...


class SizedExitExecutor(Protocol):
    """An executor whose exits are sized from the position's filled entry legs (`LiveExecutor`)."""

    def exit(
        self, intent: ExitIntent, entry: PairFill | None = None, binance_closed: LegFill | None = None
    ) -> PairFill: ...


def _leg_json(leg: LegFill | None) -> dict[str, Any] | None:
    if leg is None:
        return None
    return {"venue": leg.venue, "side": leg.side, "qty": leg.qty, "vwap": leg.vwap, "fee": leg.fee,
            "order_id": leg.order_id}  # fmt: skip


def _order_ids(fill: PairFill) -> dict[str, Any]:
    """The venues' order ids (None on paper) and the Upbit fill's own quantity: a live market buy
    spends KRW, so its quantity can differ from the row's (Binance) `qty`."""
    return {"upbit": fill.upbit.order_id, "binance": fill.binance.order_id, "upbit_qty": fill.upbit.qty}


def _leg_row(
    run_id: str, position: Position, leg: str, fill: PairFill, tick: int, reason: str,
    pnl: tuple[float, float] | None = None,
) -> LegRow:  # fmt: skip
    return LegRow.of_fill(
        run_id, position.trade_id, position.correlation_id, position.symbol, position.direction, leg,
        fill, reason, tick, pnl,
    )  # fmt: skip


class Trader:
    """Applies the strategy to each snapshot and records what happened."""

    def __init__(
        self, run_id: str, strategy: Strategy, executor: Executor, portfolio: Portfolio, ledger: Ledger,
        max_open_positions: int | None = None,
    ) -> None:  # fmt: skip
        self.run_id = run_id
        self.strategy = strategy
        self.executor = executor
        self._sized_exits = "entry" in inspect.signature(executor.exit).parameters
        self.exit_failures = 0
        self._exit_legs_filled: dict[str, LegFill] = {}
        """By trade id, the exit leg that filled in a failed live exit: the retry places only the other."""
        self.portfolio = portfolio
        self.ledger = ledger
        self.rejected_orders: dict[str, int] = {}
        self.leg_unwinds = 0
        self.entries_held = 0
        """Entries not taken because the ledger's queue was full (`Ledger.saturated`)."""
        self.max_open_positions = max_open_positions
        """No entry is taken while this many positions are open; None for no cap."""
        self.entries_held_at_cap = 0
        """Entries not taken because `max_open_positions` were open."""
        self._at_cap = False
        self.trade_events: list[dict[str, Any]] = []
        self.residuals = ResidualTally()
        """Each filled entry's hedge residual (Upbit minus Binance quantity), summed for kpi.json."""
        self.left_open: list[dict[str, Any]] = []
        """Positions the stop-time flatten could not close: symbol, trade_id and reason."""
        self.flatten_lead = FlattenLead()
        """The run's order round trips, timed: how early the loop stops for the flatten."""
        self._closed_pnls: list[float] = []
        self._venue_wait_seen = executor.venue_wait_ms
        self.trace: DecisionTracer | None = None
        """Set for a `--trace` run: every entry and exit decision is recorded there."""

    def drain_closed_pnls(self) -> list[float]:
        """USD PnL of the trades closed since the last call (for the per-trade guards)."""
        drained, self._closed_pnls = self._closed_pnls, []
        return drained

    def take_venue_wait_ms(self) -> float:
        """Time the executor waited on the venues (orders, fills) since the last call: the exchange's
        time, which the loop leaves out of its processing time as it does the market-data wait."""
        total = self.executor.venue_wait_ms
        waited, self._venue_wait_seen = total - self._venue_wait_seen, total
        return waited

    def kpi_view(self) -> dict[str, Any]:
        """The KPI snapshot every heartbeat line carries."""
        p = self.portfolio
        return {
            "closed_trades": p.closed_trades,
            "open_positions": len(p.positions),
            "opportunities_generated": self.strategy.opportunities_generated,
            "wins": p.wins,
            "losses": p.losses,
            "net_pnl_krw": round(p.net_pnl_krw, 2),
            "net_pnl_usd": round(p.net_pnl_usd, 4),
            "db_inserts_ok": self.ledger.db_inserts_ok,
            "db_inserts_failed": self.ledger.db_inserts_failed,
        }

    def guard_view(self) -> dict[str, Any]:
        """The guard inputs every heartbeat line carries (OPS_PROTOCOL §5.1)."""
        p = self.portfolio
        return {
            "peak_pnl": round(p.peak_pnl_usd, 4),
            "drawdown_pct": round(p.drawdown_pct, 4),
            "consecutive_losses": p.consecutive_losses,
        }

    def final_kpi(self) -> dict[str, Any]:
        """The trading part of kpi.json: results, DB acknowledgements, refusals and the trade events.

        `open_positions` here is the list of positions left open at stop (see `flatten`).
        """
        view = self.kpi_view()
        return {
            **{k: v for k, v in view.items() if not k.startswith("db_")},
            "open_positions": list(self.left_open),
            "db_counts": {
                "db_inserts_ok": view["db_inserts_ok"],
                "db_inserts_failed": view["db_inserts_failed"],
            },
            "event_inserts_failed": self.ledger.event_inserts_failed,
            "rejected_orders": dict(self.rejected_orders),
            "leg_unwinds": self.leg_unwinds,
            "entries_held_for_ledger": self.entries_held,
            "entries_held_at_position_cap": self.entries_held_at_cap,
            "exit_failures": self.exit_failures,
            "trade_events": self.trade_events,
        }

    def on_snapshot(self, snapshot: MarketSnapshot) -> None:
        exits, entries = self.strategy.decide(snapshot, self.portfolio.held())
        for intent in exits:
            self._close(self.portfolio.positions[intent.position.symbol], intent, snapshot.tick)
        if entries and self.ledger.saturated:
            self._hold_entries(snapshot.tick, entries)
            return
        cap = self.max_open_positions
        if cap is not None and len(self.portfolio.positions) + len(entries) > cap:
            entries = sorted(entries, key=lambda e: e.quote.net_pct, reverse=True)
        for index, entry in enumerate(entries):
            if self._cap_reached():
                self._hold_at_cap(snapshot.tick, entries[index:])
                return
            outcome, trade_id, note = self._open(entry.quote.symbol, snapshot, entry)
            if self.trace is not None:
                self.trace.entry(snapshot.tick, entry, outcome, trade_id, note)
        self._at_cap = self._at_cap and self._cap_reached()

    def _cap_reached(self) -> bool:
        cap = self.max_open_positions
        return cap is not None and len(self.portfolio.positions) >= cap

    def _hold_at_cap(self, tick: int, entries: list[EntryIntent]) -> None:
        """`max_open_positions` are open: no new position until one closes; logged once per episode."""
        self.entries_held_at_cap += len(entries)
        if not self._at_cap:
            self._at_cap = True
            log.info("%d positions open (the cap, guards.max_open_positions): entries held until one closes",
                     len(self.portfolio.positions))  # fmt: skip
        if self.trace is not None:
            for entry in entries:
                note = f"{self.max_open_positions} positions open (the cap): entry held"
                self.trace.entry(tick, entry, "rejected", None, note)

    def _hold_entries(self, tick: int, entries: list[EntryIntent]) -> None:
        """The ledger's queue is full (the database is behind): no new position is opened until it
        catches up, so that every leg still has room; exits go on."""
        self.entries_held += len(entries)
        if self.entries_held == len(entries):
            log.info("ledger queue full (%d records pending): entries held until it drains",
                     self.ledger.pending_count)  # fmt: skip
        if self.trace is not None:
            for entry in entries:
                self.trace.entry(tick, entry, "rejected", None, "ledger queue full: entry held")

    def _open(self, symbol: str, snapshot: MarketSnapshot, entry: Any) -> tuple[str, str | None, str]:
        """Enter a position; returns (outcome, trade id, what went wrong) for the decision trace."""
        started = time.monotonic()
        result = self.executor.enter(entry, snapshot)
        if isinstance(result, Rejected):
            key = result.kind
            self.rejected_orders[key] = self.rejected_orders.get(key, 0) + 1
            log.info("entry on %s rejected: %s", symbol, result.reason)
            return "rejected", None, result.reason
        self.flatten_lead.round_trip(time.monotonic() - started)
        trade_id = self.portfolio.next_trade_id()
        correlation_id = f"{self.run_id}:{trade_id}"
        if isinstance(result, LegFailure):
            self.leg_unwinds += 1
            payload = {
                "symbol": symbol,
                "failed_venue": result.failed_venue,
                "reason": result.reason,
                "filled": _leg_json(result.filled),
                "unwind": _leg_json(result.unwind),
            }
            self.ledger.record_event(self.run_id, "LEG_UNWOUND", payload, correlation_id)
            if result.unwind is None:
                log.error("one-legged exposure on %s: its unwind failed (%s)", symbol, correlation_id)
            else:
                log.warning("asymmetric fill on %s unwound: %s (%s)", symbol, result.reason, correlation_id)
            return "leg_unwound", trade_id, result.reason
        position = self.portfolio.open(trade_id, correlation_id, result, snapshot.tick)
        residual = self.residuals.add_entry(symbol, result)
        self.ledger.record_trade_leg(
            _leg_row(self.run_id, position, "entry", result, snapshot.tick, "threshold"),
            "TRADE_OPEN",
            {
                "symbol": symbol,
                "direction": position.direction,
                "premium_net_pct": result.quote.net_pct,
                "order_ids": _order_ids(result),
                **residual,
            },
            correlation_id,
        )
        self.trade_events.append(
            {"tick": snapshot.tick, "epoch": round(time.time(), 3), "event": "entry", "symbol": symbol,
             "trade_id": trade_id, "premium_pct": result.quote.gross_pct, **residual}
        )  # fmt: skip
        return "opened", trade_id, ""

    def _exit_fill(self, position: Position, intent: ExitIntent) -> PairFill | None:
        """Both exit legs; None when a live exit failed, the position then stays open."""
        started = time.monotonic()
        try:
            return self._venue_exit(position, intent)
        finally:
            self.flatten_lead.round_trip(time.monotonic() - started)

    def _venue_exit(self, position: Position, intent: ExitIntent) -> PairFill | None:
        if not self._sized_exits:
            return self.executor.exit(intent)
        from arbitrage.live_orders import LiveExitError  # only live executors size their exits

        earlier = self._exit_legs_filled.get(position.trade_id)
        try:
            fill = cast(SizedExitExecutor, self.executor).exit(intent, position.entry, earlier)
        except LiveExitError as exc:
            self.exit_failures += 1
            if exc.filled is not None:
                self._exit_legs_filled[position.trade_id] = exc.filled
            new = exc.filled is not None and (earlier is None or exc.filled.order_id != earlier.order_id)
            payload = {
                "symbol": position.symbol,
                "reason": str(exc),
                "failed_venue": exc.failed_venue,
                "filled": _leg_json(exc.filled) if new else None,
                "filled_earlier": _leg_json(earlier),
                "exit_reason": intent.reason,
            }
            self.ledger.record_event(self.run_id, "EXIT_FAILED", payload, position.correlation_id)
            log.error("exit of %s failed, position kept open: %s (%s)", position.symbol, exc,
                      position.correlation_id)  # fmt: skip
            return None
        self._exit_legs_filled.pop(position.trade_id, None)
        return fill

    def _close(self, position: Position, intent: ExitIntent, tick: int) -> ClosedTrade | None:
        fill = self._exit_fill(position, intent)
        if self.trace is not None:
            self.trace.exit(tick, intent, "exit_failed" if fill is None else "closed", position.trade_id)
        if fill is None:
            return None
        closed = self.portfolio.close(position, fill, intent.reason)
        remainder = self.residuals.add_exit(position.symbol, position.entry, fill)
        self._closed_pnls.append(closed.pnl_usd)
        row = _leg_row(
            self.run_id, position, "exit", fill, tick, intent.reason, (closed.pnl_krw, closed.pnl_usd)
        )
        self.ledger.record_trade_leg(
            row,
            "TRADE_CLOSE",
            {
                "symbol": position.symbol,
                "reason": intent.reason,
                "pnl_usd": closed.pnl_usd,
                "order_ids": _order_ids(fill),
                **remainder,
            },
            position.correlation_id,
        )
        self.trade_events.append(
            {"tick": tick, "epoch": round(time.time(), 3), "event": "exit", "symbol": position.symbol,
             "trade_id": position.trade_id, "premium_pct": fill.quote.gross_pct, "pnl_usd": closed.pnl_usd,
             "reason": intent.reason, **remainder}
        )  # fmt: skip
        return closed

    def flatten(self, books: LastUsableBooks, now_ms: int, reason: str = FLATTEN) -> int:
        """Close every open position on its last usable books; returns how many were closed.

        `reason` is the exit reason the closed trades record: `flatten` for a stop, `guard` when a
        guard trip stopped the run.

        Never raises: a position that cannot be closed (no book young enough, a book too thin,
        a failed exit) stays open and is reported in `left_open`, the log and the event log.
        """
        closed = 0
        for position in list(self.portfolio.positions.values()):
            try:
                why = self._flatten_one(position, books, now_ms, reason)
            except Exception as exc:
                why = f"flatten failed: {type(exc).__name__}: {exc}"
            if why is None:
                closed += 1
            else:
                self._report_left_open(position, why)
        return closed

    def _flatten_one(
        self, position: Position, books: LastUsableBooks, now_ms: int, reason: str
    ) -> str | None:
        """Close one position; None when closed, else why it stays open."""
        found = books.for_exit(position.symbol, now_ms)
        if isinstance(found, str):
            return found
        quote = exit_quote(found.snapshot(), position.view(), self.strategy.fees)
        if quote is None:
            return f"book too thin to exit {position.entry.quote.qty:.8f}"
        if self._close(position, ExitIntent(position.view(), quote, reason), found.tick) is None:
            closed = self._exit_legs_filled.get(position.trade_id)
            if closed is None:
                return "exit failed"
            return f"exit failed; its {closed.venue} leg is closed (order {closed.order_id})"
        return None

    def _report_left_open(self, position: Position, reason: str) -> None:
        entry = {"symbol": position.symbol, "trade_id": position.trade_id, "reason": reason}
        self.left_open.append(entry)
        log.error("position %s (%s) left open at stop: %s", position.symbol, position.correlation_id, reason)
        try:
            self.ledger.record_event(self.run_id, "POSITION_LEFT_OPEN", entry, position.correlation_id)
        except Exception as exc:
            log.error("POSITION_LEFT_OPEN for %s not recorded: %s", position.correlation_id, exc)
