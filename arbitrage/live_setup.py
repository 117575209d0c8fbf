"""What `--mode live` adds to a run once its start gate passed: the live-only gate and the executor.

Live trading needs `--market ccxt` (the venues themselves, or `arbitrage sim` via
`--exchange-url`): the synthetic market has no venue to send orders to. The arming decision is
taken again here, because its keys and notional cap are what the run trades with; the order
notional is capped at `LIVE_MAX_NOTIONAL_USD`. Every kill switch check the order path makes is
counted and reported in the `LIVE_END` event. The venues' balances before the first order are
recorded in the `LIVE_START` event, for `arbitrage reconcile` to hold their change to the ledger's
fills. ccxt is imported by live runs only.

An order whose outcome was ambiguous is recorded as an `ORDER_LOOKUP` event with what its lookup
by client order id found. One whose outcome stays unknown stops the run (`ORDER_OUTCOME_UNKNOWN`)
and activates the kill switch: the engine no longer knows its exposure, so no further run may
trade until an operator has reconciled the venues (`arbitrage reconcile`), released the switch and
recorded POSITIONS_RECONCILED (preflight names the order until then, whatever the switch says);
the stop-time flatten still closes every position the run does know, as long as the venues answer
within the stop's deadline (`live.stop_venue_sec`). A first leg whose unwind was refused does the same
(`UNHEDGED_LEG`): the run holds exposure that no position carries and no flatten closes.

Every order is recorded before it is sent and once its fate is known (`record_durably`,
`order_trail`), so that an order a crash leaves unbooked is found before the next armed run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arbitrage.config import AppConfig, StrategyConfig
from arbitrage.market.backoff import RateLimits
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.ops.live_arm import LiveKeys, check_arming

if TYPE_CHECKING:
    from arbitrage.execution import LegFill
    from arbitrage.live_execution import LiveExecutor
    from arbitrage.order_lookup import Deadline, LookupPolicy, Resolution
    from arbitrage.order_trail import DurableRecord

log = logging.getLogger("arbitrage.live_setup")

Record = Callable[[str, dict[str, Any]], object]

MARKET_REFUSAL = "live trading needs --market ccxt (with --exchange-url for `arbitrage sim`)"
UNKNOWN_STOP = "ORDER_OUTCOME_UNKNOWN"
UNHEDGED_STOP = "UNHEDGED_LEG"


@dataclass(frozen=True)
class LivePlan:
    """The armed decision a live run trades with (the keys never leave it but for the executor)."""

    keys: LiveKeys
    notional_usd: float
    arming: dict[str, Any]


ArmClaim = Callable[[int], "str | None"]
"""Claims an arm time for this run: None when claimed, else the refusal line (`claim_arm`)."""


def live_plan(config: AppConfig, record: Record, claim: ArmClaim | None = None) -> LivePlan | str:
    """The live plan, or the operator's refusal line (recorded as LIVE_REFUSED / LIVE_ARM_REFUSED).

    A debug load knob (`ops.debug_load`) refuses the run: it is for tests of the anomaly table.
    `claim` makes the arm single-use: a second run with the same `LIVE_ARM_AT` is refused before
    any venue client exists (code ARM_REUSED).
    """
    if config.run.market != "ccxt":
        record("LIVE_REFUSED", {"reason": MARKET_REFUSAL})
        return f"live mode refused: {MARKET_REFUSAL}"
    knobs = config.debug.knobs_set()
    if knobs:
        reason = f"{', '.join(knobs)}: test-only load, expected 0 in live mode"
        record("LIVE_REFUSED", {"reason": reason})
        return f"live mode refused: {reason}"
    decision = check_arming(os.environ, time.time())
    if not decision.ok or decision.keys is None or decision.notional_usd is None:
        record("LIVE_ARM_REFUSED", decision.to_event())
        return f"live mode refused: {decision.reason}"
    if claim is not None and decision.armed_at is not None:
        reused = claim(decision.armed_at)
        if reused is not None:
            record(
                "LIVE_ARM_REFUSED",
                {**decision.to_event(), "ok": False, "code": "ARM_REUSED", "reason": reused},
            )
            return f"live mode refused: {reused}"
    return LivePlan(decision.keys, float(decision.notional_usd), decision.to_event())


def lookup_policy(config: AppConfig) -> LookupPolicy:
    """Look-ups of an ambiguous order within half the watchdog's loop-latency warning, so that
    resolving one never makes the trading loop look stalled; five tries at least."""
    from arbitrage.order_lookup import LookupPolicy

    budget = config.watchdog.loop_latency_warn_ms / 2000.0
    return LookupPolicy(budget_sec=budget, interval_sec=budget / 5.0)


class LiveSession:
    """The live executor of one run, its capped strategy config and its kill switch check count."""

    def __init__(
        self,
        config: AppConfig,
        plan: LivePlan,
        kill_switch: KillSwitch,
        record: Record,
        rate_limits: RateLimits | None = None,
        *,
        run_id: str | None = None,
        stop: Callable[[str], None] | None = None,
        stop_deadline: Deadline,
        record_durably: DurableRecord | None = None,
    ) -> None:
        from arbitrage.live_execution import LiveExecutor
        from arbitrage.order_trail import OrderTrail

        notional = min(config.strategy.order_notional_usd, plan.notional_usd)
        self.strategy: StrategyConfig = config.strategy.model_copy(update={"order_notional_usd": notional})
        self._kill_switch = kill_switch
        self._record = record
        self._run_id = run_id
        self._stop = stop
        self.kill_switch_checks = 0
        self.kill_switch_blocks = 0
        self.executor: LiveExecutor = LiveExecutor(
            self.strategy,
            plan.keys,
            blocks_orders=self._blocks_orders,
            exchange_url=config.run.exchange_url,
            rate_limits=rate_limits,
            lookup=lookup_policy(config),
            on_lookup=self._on_lookup,
            on_unhedged=self._on_unhedged,
            stop_deadline=stop_deadline,
            fill_timeout_sec=config.live.fill_timeout_sec,
            trail=OrderTrail(record_durably),
        )
        record(
            "LIVE_START",
            {
                "arming": plan.arming,
                "order_notional_usd": notional,
                "exchange_url": config.run.exchange_url,
                **self._start_balances(),
            },
        )

    def _start_balances(self) -> dict[str, Any]:
        """The venues' balances before the first order (`balances`), or why they could not be read."""
        import ccxt

        try:
            return {"balances": self.executor.balances()}
        except (ccxt.BaseError, TypeError, ValueError, KeyError) as exc:
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            log.warning("venue balances at start not read, reconcile cannot check them: %s", reason)
            return {"balances": None, "balances_error": reason}

    def _blocks_orders(self) -> bool:
        self.kill_switch_checks += 1
        blocked = self._kill_switch.blocks_orders()
        self.kill_switch_blocks += int(blocked)
        return blocked

    def _on_lookup(self, resolution: Resolution) -> None:
        """Record what a lookup found; an unknown outcome also stops the run and sets the kill switch."""
        self._record("ORDER_LOOKUP", resolution.to_event())
        if resolution.outcome != "unknown":
            return
        self._halt(
            UNKNOWN_STOP,
            f"order outcome unknown: {resolution.venue} {resolution.side} {resolution.symbol}"
            f" client order id {resolution.client_order_id}; reconcile before releasing",
        )

    def _on_unhedged(self, symbol: str, leg: LegFill, refusal: str) -> None:
        """A first leg whose unwind was refused: exposure no position holds, so the run stops and
        the kill switch is set until the operator has reconciled."""
        self._halt(
            UNHEDGED_STOP,
            f"one-legged exposure: {leg.venue} {leg.side} {leg.qty:.8f} {symbol} (order {leg.order_id})"
            f" not unwound ({refusal}); reconcile before releasing",
        )

    def _halt(self, stop_reason: str, line: str) -> None:
        """Stop the run and set the kill switch (by `live`), saying why in one line."""
        if self._stop is not None:
            self._stop(stop_reason)
        log.error("%s", line)
        self._kill_switch.activate_or_retry_at_close(line, "live", run_id=self._run_id)

    def close(self) -> None:
        """Close the venue clients and record how often the kill switch was asked."""
        try:
            self.executor.close()
        finally:
            self._record(
                "LIVE_END",
                {
                    "kill_switch_checks": self.kill_switch_checks,
                    "kill_switch_blocks": self.kill_switch_blocks,
                },
            )
