"""Crafted chaos outcomes, and a runner that produces them, for testing the report and the CLI
without starting servers (the real runner is exercised by the integration suite)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gates.chaos.model import ChaosOptions, Classification, FaultEvent, RunOutcome, RunPlan, Schedule

STRIKE_LAG_SEC = 0.04
WALLCLOCK_EXTRA_SEC = 1.0
CHECKER_SEC = 0.5


def outcome_for(plan: RunPlan, classification: Classification = "clean") -> RunOutcome:
    """The outcome of `plan` as if every fault struck 40 ms late and cleared on time."""
    events: list[FaultEvent] = []
    for fault in plan.faults:
        events.append(FaultEvent(fault.kind, "strike", fault.at_sec + STRIKE_LAG_SEC))
        if fault.duration_sec:
            events.append(FaultEvent(fault.kind, "clear", fault.at_sec + fault.duration_sec))
    failing = classification in ("LOST", "UNEXPLAINED")
    return RunOutcome(
        plan=plan,
        classification=classification,
        reasons=[f"leg 3 of run {plan.index} missing from the ledger"] if failing else [],
        exit_code=0 if classification == "clean" else 1,
        run_id=f"run{plan.index}",
        evidence_dir=None,
        wallclock_sec=plan.duration_sec + WALLCLOCK_EXTRA_SEC,
        checker_sec=CHECKER_SEC,
        events=events,
    )


def crafted_runner(
    classes: Mapping[int, Classification], seen: list[ChaosOptions] | None = None
) -> Callable[[Schedule, ChaosOptions, Callable[[RunOutcome], None]], list[RunOutcome]]:
    """A runner whose run K is classified `classes.get(K, "clean")`; it reports each outcome as
    it is made, in reverse order (as parallel workers may), and returns them in index order."""

    def run(
        schedule: Schedule, options: ChaosOptions, on_outcome: Callable[[RunOutcome], None]
    ) -> list[RunOutcome]:
        if seen is not None:
            seen.append(options)
        outcomes = [outcome_for(plan, classes.get(plan.index, "clean")) for plan in schedule.runs]
        for outcome in reversed(outcomes):
            on_outcome(outcome)
        return outcomes

    return run
