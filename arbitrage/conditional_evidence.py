"""The engine's side of the conditional evidence: gathers what it needs and writes what the rule requires.

Which files a run leaves is decided by `evidence.conditional_rule.required_files`, the rule
`verify` judges by. The files are written in the close-out, after the space reserved for it
was released and before the final seal, so the manifest lists and hashes them. A file that
cannot be written is an evidence failure like any other: reported once, the others still written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from arbitrage.daily_tally import Counters, DailyTally
from arbitrage.decision_trace import DecisionTracer
from arbitrage.evidence_failure import STOP_REASON, EvidenceFailures
from arbitrage.market.book import OrderBook
from arbitrage.market.last_books import LastUsableBooks, SymbolBooks
from evidence import conditional as docs
from evidence.conditional_rule import PLANNED_STOPS, RunConditions, daily_report_reasons, required_files
from evidence.names import DAILY_REPORT, DECISION_TRACE, STOP_REASON_SNAPSHOT

if TYPE_CHECKING:
    from arbitrage.closeout import RunFacts
    from arbitrage.config import AppConfig
    from arbitrage.ops.supervisor import Supervisor
    from arbitrage.portfolio import Position
    from arbitrage.run_evidence import EvidenceDir
    from arbitrage.trader import Trader


def _top(book: OrderBook) -> docs.BookTop:
    bid = book.bids[0][0] if book.bids else None
    ask = book.asks[0][0] if book.asks else None
    return docs.BookTop(venue=book.venue, bid=bid, ask=ask, timestamp_ms=book.timestamp_ms)


def books_state(books: LastUsableBooks, now_ms: int) -> list[docs.LastBooks]:
    """Every symbol's last usable books, with their age now and whether a flatten could still use them."""
    found: list[docs.LastBooks] = []
    for symbol, held in sorted(books.latest().items()):
        usable = isinstance(books.for_exit(symbol, now_ms), SymbolBooks)
        found.append(
            docs.LastBooks(
                symbol=symbol,
                tick=held.tick,
                age_ms=held.age_ms(now_ms),
                usable_for_exit=usable,
                fx=_top(held.fx),
                upbit=_top(held.upbit),
                binance=_top(held.binance),
            )
        )
    return found


def _position(position: Position) -> dict[str, Any]:
    entry = position.entry
    legs = [
        {"venue": leg.venue, "side": leg.side, "qty": leg.qty, "vwap": leg.vwap, "order_id": leg.order_id}
        for leg in (entry.upbit, entry.binance)
    ]
    return {
        "trade_id": position.trade_id,
        "symbol": position.symbol,
        "direction": position.direction,
        "qty": entry.quote.qty,
        "entry_tick": position.entry_tick,
        "entry_premium_net_pct": entry.quote.net_pct,
        "entry_legs": legs,
    }


class RunConditional:
    """One run's conditional evidence: the decision trace, the daily tally and the stop snapshot."""

    def __init__(
        self,
        config: AppConfig,
        run_id: str,
        evidence: EvidenceDir,
        trader: Trader,
        supervisor: Supervisor,
        books: LastUsableBooks,
        counters: Callable[[], Counters],
        failures: EvidenceFailures,
        started_epoch: float,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.evidence = evidence
        self.trader = trader
        self.supervisor = supervisor
        self.books = books
        self.failures = failures
        self.daily = DailyTally(started_epoch, counters)
        self.open_at_stop: list[dict[str, Any]] = []
        self.loop_count = 0
        self.last_loop_epoch: float | None = None
        self.tracer: DecisionTracer | None = None
        if config.run.trace:
            try:
                self.tracer = DecisionTracer(
                    evidence.path, config.strategy, config.run.tick_interval_sec, failures.report
                )
            except OSError as exc:
                failures.report(exc)
            trader.trace = self.tracer

    def after_tick(self) -> None:
        """Once per loop iteration: the daily tally follows the day and its drawdown."""
        self.daily.observe(time.time(), self.trader.portfolio.net_pnl_usd)

    def before_flatten(self, loop_count: int, last_loop_epoch: float | None) -> None:
        """Remember where the loop stopped and every position then open, before the flatten closes
        what it can."""
        self.loop_count, self.last_loop_epoch = loop_count, last_loop_epoch
        self.open_at_stop = [_position(p) for p in self.trader.portfolio.positions.values()]

    def write(self, facts: RunFacts, failures: EvidenceFailures) -> None:
        """Write every conditional file the rule requires of this run; never raises an OSError.

        A failed write is reported to `failures`; a run that was stopping as planned then stops
        as `EVIDENCE_WRITE_FAILED`, which requires the stop snapshot too, so it is written as well.
        """
        written: set[str] = set()
        while True:
            conditions = self._conditions(facts)
            pending = [name for name in required_files(conditions) if name not in written]
            if not pending:
                return
            for name in pending:
                written.add(name)
                try:
                    self._write_one(name, facts, conditions)
                except OSError as exc:
                    failures.report(exc)
                    if facts.stop_reason in PLANNED_STOPS:
                        facts.stop_reason = STOP_REASON

    def _conditions(self, facts: RunFacts) -> RunConditions:
        return RunConditions(
            phase=self.config.run.phase,
            stop_reason=facts.stop_reason,
            trace=self.config.run.trace,
            started_epoch=facts.started_epoch,
            ended_epoch=facts.ended_epoch,
        )

    def _write_one(self, name: str, facts: RunFacts, conditions: RunConditions) -> None:
        if name == DECISION_TRACE:
            if self.tracer is None:
                cfg = self.config
                self.tracer = DecisionTracer(
                    self.evidence.path, cfg.strategy, cfg.run.tick_interval_sec, self.failures.report
                )
            self.tracer.write(self.run_id)
        elif name == DAILY_REPORT:
            report = docs.DailyReport(
                run_id=self.run_id,
                phase=self.config.run.phase,
                required_because=daily_report_reasons(conditions),
                run_started_epoch=facts.started_epoch,
                run_ended_epoch=facts.ended_epoch,
                days=self.daily.report(facts.ended_epoch),
            )
            self.evidence.write(DAILY_REPORT, report.model_dump(mode="json"))
        elif name == STOP_REASON_SNAPSHOT:
            self.evidence.write(STOP_REASON_SNAPSHOT, self._snapshot(facts).model_dump(mode="json"))

    def _snapshot(self, facts: RunFacts) -> docs.StopReasonSnapshot:
        now = time.time()
        left_open = {entry["trade_id"]: entry["reason"] for entry in self.trader.left_open}
        positions = [
            docs.PositionAtStop(
                **p,
                at_stop="left_open" if p["trade_id"] in left_open else "flattened",
                left_open_reason=left_open.get(p["trade_id"]),
            )
            for p in self.open_at_stop
        ]
        trip = self.supervisor.guard_trip
        view = self.trader.guard_view()
        guards = docs.GuardsState(
            tripped=None if trip is None else docs.GuardTripState(**trip.to_event()),
            peak_pnl_usd=view["peak_pnl"],
            drawdown_pct=view["drawdown_pct"],
            consecutive_losses=view["consecutive_losses"],
            limits={k: float(v) for k, v in self.config.guards.model_dump().items()},
        )
        wd = self.supervisor.watchdog.summary()
        watchdog = docs.WatchdogState(
            level=wd["level"],
            max_level=wd["max_level"],
            evaluations=wd["evaluations"],
            transitions=wd["transitions"],
            critical_reasons=wd["critical_reasons"],
        )
        warnings = facts.warnings
        return docs.StopReasonSnapshot(
            run_id=self.run_id,
            stop_reason=facts.stop_reason,
            stopped_at=datetime.fromtimestamp(facts.ended_epoch, UTC).isoformat(),
            stopped_epoch=facts.ended_epoch,
            loop_count=self.loop_count,
            last_loop_epoch=self.last_loop_epoch,
            open_positions=positions,
            last_books=books_state(self.books, int(now * 1000)),
            guards=guards,
            watchdog=watchdog,
            warnings_count=warnings.count,
            first_warnings=[str(w.get("message", "")) for w in warnings.first],
        )
