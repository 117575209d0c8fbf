"""What one run holds: the services it connected to, the parts it trades with, and its clock.

`arbitrage.run_builder` makes them before the run's clock starts; the loop drives them and the
close-out reads what they measured; neither builds any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from arbitrage.conditional_evidence import RunConditional
from arbitrage.ledger import Ledger
from arbitrage.live_setup import LivePlan, LiveSession
from arbitrage.market.fetcher import DeadlineFetcher
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.ops.supervisor import Supervisor
from arbitrage.ops.watcher import RunWatcher
from arbitrage.portfolio import Portfolio
from arbitrage.services import ServiceEndpoints
from arbitrage.state import RunState
from arbitrage.strategy import Strategy
from arbitrage.trader import Trader

RUN_LOGGER = "arbitrage.orchestrator"
"""The logger of the run's own lines (start-up, loop, close-out), whichever module writes them."""


@dataclass
class Connected:
    """The services a run reached: where they are, its ledger and its run state; the kill switch and
    the live plan once the run is admitted."""

    endpoints: ServiceEndpoints
    ledger: Ledger
    state: RunState
    kill_switch: KillSwitch | None = None
    live: LivePlan | None = None

    def close(self) -> None:
        """Close the kill switch, the run state and the ledger, in that order."""
        if self.kill_switch is not None:
            self.kill_switch.close()
        self.state.close()
        self.ledger.close()


@dataclass(frozen=True)
class RunParts:
    """One run's trading parts; `refusal` is why it could not be set up to trade (None: it can)."""

    portfolio: Portfolio
    supervisor: Supervisor
    live: LiveSession | None
    strategy: Strategy
    trader: Trader
    watcher: RunWatcher
    fetcher: DeadlineFetcher | None
    conditional: RunConditional
    started_epoch: float
    refusal: str | None


@dataclass(frozen=True)
class RunClock:
    """When the run's clock started (monotonic) and how long it is meant to run (None: tick-bound)."""

    t0: float
    expected: float | None

    @property
    def deadline(self) -> float | None:
        """The monotonic time the run must end by, if it has a duration."""
        return None if self.expected is None else self.t0 + self.expected
