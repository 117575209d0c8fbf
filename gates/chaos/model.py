"""The vocabulary of chaos: fault kinds, a run's plan, a run's outcome, and the options of a campaign.

A schedule is a pure function of its seed (`gates.chaos.schedule`); a plan says, for one run,
which faults strike, when (seconds after the engine's launch, or after its run started: the
campaign's `clock`) and for how long. An outcome is
what the independent checker concluded about the run that plan produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Clock = Literal["launch", "run"]
Mode = Literal["paper", "live"]

PROCESS_FAULTS = ("sigterm", "sigkill")
POSTGRES_FAULTS = (
    "pg-terminate", "pg-restart", "pg-freeze", "pg-net-reset", "pg-net-blackhole", "pg-net-delay",
)  # fmt: skip
REDIS_FAULTS = ("redis-freeze", "redis-kill", "redis-net-blackhole")
EXCHANGE_FAULTS = (
    "exchange-429", "exchange-418", "exchange-5xx", "exchange-timeout", "exchange-bad-json",
    "exchange-latency", "exchange-stale", "exchange-halted", "exchange-empty", "exchange-crossed",
    "exchange-negative", "exchange-nan",
)  # fmt: skip
DISK_FAULTS = ("disk-full",)
FAULT_KINDS: tuple[str, ...] = (
    *PROCESS_FAULTS, *POSTGRES_FAULTS, *REDIS_FAULTS, *EXCHANGE_FAULTS, *DISK_FAULTS,
)  # fmt: skip
"""Every fault kind a paper campaign's schedule can name, in the order `--faults` lists them."""
ORDER_FAULTS = (
    "order-lost-reply", "order-lost", "order-lookup-down", "order-late-fill", "order-held", "order-refused",
)  # fmt: skip
"""Faults of the venues' order routes: they matter only to a live campaign, whose engine sends orders."""
LIVE_FAULT_KINDS: tuple[str, ...] = (*FAULT_KINDS, *ORDER_FAULTS)
"""Every fault kind a live campaign's schedule can name; paper schedules (and their seeds) are unchanged."""

EXCHANGE_SIM_FAULT = {
    "exchange-429": "rate_limit", "exchange-418": "ban", "exchange-5xx": "server_error",
    "exchange-timeout": "timeout", "exchange-bad-json": "bad_json", "exchange-stale": "stale",
    "exchange-halted": "halted", "exchange-empty": "empty", "exchange-crossed": "crossed",
    "exchange-negative": "negative", "exchange-nan": "nan",
}  # fmt: skip
"""The exchange simulator's own fault name for each exchange kind (latency is a separate knob)."""
ORDER_SIM_FAULT = {
    "order-lost-reply": "lost_reply", "order-lost": "lost_order", "order-lookup-down": "lookup_down",
    "order-late-fill": "late_fill", "order-held": "held_order",
}  # fmt: skip
"""The simulator's own order fault for each order kind (`order-refused` is its `reject_orders`)."""

TERMINAL_FAULTS = frozenset(PROCESS_FAULTS)
"""Faults that end the engine: nothing is scheduled after them in the same run."""

Classification = Literal["clean", "failed-closed", "LOST", "UNEXPLAINED"]
CLASSIFICATIONS: tuple[Classification, ...] = ("clean", "failed-closed", "LOST", "UNEXPLAINED")


@dataclass(frozen=True)
class Fault:
    """One fault: `kind` strikes `at_sec` after the clock origin (launch or run start) and is
    cleared `duration_sec` later (instantaneous kinds such as signals and `pg-terminate` ignore
    the duration)."""

    kind: str
    at_sec: float
    duration_sec: float

    def label(self) -> str:
        return f"{self.kind}@{self.at_sec:.2f}s/{self.duration_sec:.2f}s"


@dataclass(frozen=True)
class RunPlan:
    """One run of a schedule: the engine's seed and duration, and the faults that strike it."""

    index: int
    engine_seed: int
    duration_sec: float
    faults: tuple[Fault, ...]

    def kinds(self) -> tuple[str, ...]:
        return tuple(fault.kind for fault in self.faults)

    def line(self) -> str:
        """One schedule line, e.g. `run 0007 seed=4213 10s: pg-freeze@3.20s/2.50s + sigterm@6.10s/0.00s`."""
        faults = " + ".join(fault.label() for fault in self.faults) or "no fault"
        return f"run {self.index:04d} seed={self.engine_seed} {self.duration_sec:g}s: {faults}"


@dataclass(frozen=True)
class Schedule:
    """Every run of a campaign, derived from `seed` alone (and the options that shape it)."""

    seed: int
    duration_sec: float
    fault_kinds: tuple[str, ...]
    runs: tuple[RunPlan, ...]


@dataclass(frozen=True)
class FaultEvent:
    """When a fault was really struck or cleared, measured from the campaign's clock origin
    (`ChaosOptions.clock`: the engine's launch, or the start of its run)."""

    kind: str
    action: Literal["strike", "clear"]
    at_sec: float
    detail: str = ""


@dataclass
class RunOutcome:
    """What the independent checker concluded about one run."""

    plan: RunPlan
    classification: Classification
    reasons: list[str]
    exit_code: int | None
    run_id: str | None
    evidence_dir: Path | None
    wallclock_sec: float
    checker_sec: float
    events: list[FaultEvent] = field(default_factory=list)
    next_start_sec: float = 0.0
    """The next engine start the run left work for (recovery, journal replay); not checker time."""
    replay_command: str = ""
    stop_line: str = ""
    """The engine's own one-line explanation (its `arbitrage:` line or stop reason), if any."""
    venue_orders: dict[str, int] | None = None
    """A live run's filled venue orders by how the run accounts for them (booked, unknown,
    unbooked, lost); None for a paper run."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.plan.index,
            "schedule_line": self.plan.line(),
            "faults": [
                {"kind": f.kind, "at_sec": f.at_sec, "duration_sec": f.duration_sec} for f in self.plan.faults
            ],
            "classification": self.classification,
            "reasons": list(self.reasons),
            "exit_code": self.exit_code,
            "run_id": self.run_id,
            "evidence_dir": None if self.evidence_dir is None else str(self.evidence_dir),
            "wallclock_sec": round(self.wallclock_sec, 3),
            "checker_sec": round(self.checker_sec, 3),
            "next_start_sec": round(self.next_start_sec, 3),
            "events": [
                {"kind": e.kind, "action": e.action, "at_sec": round(e.at_sec, 3), "detail": e.detail}
                for e in self.events
            ],
            "replay_command": self.replay_command,
            "stop_line": self.stop_line,
            "venue_orders": self.venue_orders,
        }


@dataclass(frozen=True)
class ChaosOptions:
    """How a campaign runs: parallelism, where its servers and outputs are, and when faults strike."""

    workers: int = 1
    postgres_dsn: str | None = None
    keep: bool = False
    output_root: Path = Path("logs/chaos")
    clock: Clock = "launch"
    """What a plan's strike times count from: the engine's launch (faults may then land in its
    start-up, however long that takes), or the start of its run (its `evidence:` line; every
    fault then meets a running engine, whatever the start-up took)."""
    mode: Mode = "paper"
    """`live`: every run is an armed live run against the rig's simulator (its test keys), and the
    checker also holds the simulator's orders to the run's ledger and order trail."""
