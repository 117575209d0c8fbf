"""`--trace`: every opportunity taken and every exit, with both premiums, the decision and its reason.

The trace streams one compact JSON line per decision into a hidden file of the evidence
directory while the run goes, so its memory stays constant whatever the run's length; past
`max_entries` decisions are only counted (`dropped`), so its disk use is bounded too. At the
close-out the lines become `decision_trace.json`, written atomically. With tracing off the
trader holds no tracer and pays one `is None` test per decision.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TextIO

from arbitrage.config import StrategyConfig
from arbitrage.strategy import EntryIntent, ExitIntent, Quote
from evidence.conditional import CONDITIONAL_SCHEMA_VERSION
from evidence.names import DECISION_TRACE
from evidence.writer import fsync_dir

TRACE_MAX_ENTRIES: Final = 50_000
"""About 15 MB of trace; enough for hours of a busy paper run, small enough for `verify` to check."""
PARTIAL_NAME: Final = ".decision_trace.jsonl.partial"
"""Hidden, so never sealed: the lines streamed so far."""


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _premium(quote: Quote | None) -> dict[str, float | None] | None:
    return None if quote is None else {"gross": _finite(quote.gross_pct), "net": _finite(quote.net_pct)}


class DecisionTracer:
    """Records decisions as the trader makes them; `write` turns them into `decision_trace.json`.

    A failed write to the stream is reported once through `on_error` (an evidence failure,
    which stops the run) and tracing ends there; nothing is raised into the trading loop.
    """

    def __init__(
        self,
        evidence_dir: Path,
        strategy: StrategyConfig,
        tick_interval_sec: float,
        on_error: Callable[[OSError], object],
        max_entries: int = TRACE_MAX_ENTRIES,
    ) -> None:
        self.evidence_dir = evidence_dir
        self.partial = evidence_dir / PARTIAL_NAME
        self.max_entries = max_entries
        self.recorded = 0
        self.dropped = 0
        self._strategy = strategy
        self._tick_interval_sec = tick_interval_sec
        self._on_error = on_error
        self._stream: TextIO | None = open(self.partial, "w", encoding="utf-8")  # noqa: SIM115

    def entry(
        self, tick: int, intent: EntryIntent, outcome: str, trade_id: str | None, note: str = ""
    ) -> None:
        """An opportunity the strategy acted on, and what the executor made of it."""
        quote, threshold = intent.quote, self._strategy.entry_threshold_pct
        upbit_rich, binance_rich = intent.considered
        reason = f"{quote.direction} net premium {quote.net_pct:.4f}% >= entry threshold {threshold:g}%"
        other = binance_rich if quote.direction == "upbit_rich" else upbit_rich
        if other is not None and other.net_pct >= threshold:
            reason += f", above the other direction's {other.net_pct:.4f}%"
        if note:
            reason += f"; {note}"
        premiums = {"upbit_rich": _premium(upbit_rich), "binance_rich": _premium(binance_rich)}
        self._record(
            tick,
            quote.symbol,
            "entry",
            quote.direction,
            premiums,
            threshold,
            "enter",
            reason,
            outcome,
            trade_id,
        )

    def exit(self, tick: int, intent: ExitIntent, outcome: str, trade_id: str) -> None:
        """A position the strategy (or the stop-time flatten) closed, with the premium paid to unwind it."""
        quote, position = intent.quote, intent.position
        threshold: float | None = self._strategy.exit_threshold_pct
        if intent.reason == "threshold":
            reason = f"exit premium net {quote.net_pct:.4f}% <= exit threshold {threshold:g}%"
        elif intent.reason == "max_hold":
            held = (tick - position.entry_tick) * self._tick_interval_sec
            reason = f"held {held:g}s >= max_hold_sec {self._strategy.max_hold_sec:g}s"
        else:
            threshold = None
            reason = f"{intent.reason}: closed at stop on the last usable books"
        premiums: dict[str, Any] = {"upbit_rich": None, "binance_rich": None}
        premiums[position.direction] = _premium(quote)
        self._record(
            tick,
            position.symbol,
            "exit",
            position.direction,
            premiums,
            threshold,
            "exit",
            reason,
            outcome,
            trade_id,
        )

    def _record(
        self,
        tick: int,
        symbol: str,
        kind: str,
        direction: str,
        premiums: dict[str, Any],
        threshold: float | None,
        decision: str,
        reason: str,
        outcome: str,
        trade_id: str | None,
    ) -> None:
        if self._stream is None or self.recorded >= self.max_entries:
            self.dropped += 1
            return
        line = {
            "seq": self.recorded + 1,
            "tick": tick,
            "symbol": symbol,
            "kind": kind,
            "direction": direction,
            "premiums_pct": premiums,
            "threshold_pct": threshold,
            "decision": decision,
            "reason": reason,
            "outcome": outcome,
            "trade_id": trade_id,
        }
        try:
            self._stream.write(json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n")
        except OSError as exc:
            self.dropped += 1
            self._close_stream()
            self._on_error(exc)
            return
        self.recorded += 1

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()

    def write(self, run_id: str) -> None:
        """Write `decision_trace.json` atomically from the streamed lines, then drop the stream.

        Only whole lines are kept: decisions a failed stream lost are counted in `dropped`.
        Raises OSError when the document cannot be written; the partial file is then left behind.
        """
        if self._stream is not None:
            try:
                self._stream.flush()
            except OSError as exc:
                self._on_error(exc)
            finally:
                self._close_stream()
        target = self.evidence_dir / DECISION_TRACE
        fd, tmp_name = tempfile.mkstemp(prefix=f".{DECISION_TRACE}.", suffix=".tmp", dir=self.evidence_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out, open(self.partial, encoding="utf-8") as lines:
                os.fchmod(out.fileno(), 0o644)
                out.write('{"entries": [')
                kept = 0
                for line in lines:
                    if not line.endswith("\n") or kept >= self.recorded:
                        break
                    out.write(("\n" if kept == 0 else ",\n") + line[:-1])
                    kept += 1
                self.dropped += self.recorded - kept
                self.recorded = kept
                tail = {
                    "schema_version": CONDITIONAL_SCHEMA_VERSION,
                    "run_id": run_id,
                    "max_entries": self.max_entries,
                    "recorded": kept,
                    "dropped": self.dropped,
                }
                out.write("\n], " + json.dumps(tail, sort_keys=True)[1:] + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        fsync_dir(self.evidence_dir)
        self.partial.unlink(missing_ok=True)
