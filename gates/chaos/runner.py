"""Runs a chaos schedule: one rig per worker, the unmodified engine per run, the checker after each.

Each worker owns a rig (a PostgreSQL and a Redis it controls, each behind a TCP fault proxy, an
exchange simulator and a small evidence disk). For every plan it launches `arbitrage run` as a
subprocess exactly as a user would, strikes and clears the plan's faults at their moments
(counted from its launch, or from its evidence line on the campaign's `run` clock), waits for the
engine (a run that outlives its duration by HANG_GRACE_SEC, counted from its
evidence line, is a hang, asked for its stacks before it is killed), heals the rig, runs the next
start when the run left work for it (a kill, a pending journal, a `runs` row still running), and
hands everything to the checker.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from evidence import names
from evidence.ledger_tables import RUNS
from gates.chaos.checker import EngineResult, judge
from gates.chaos.faults import clear, reset, strike
from gates.chaos.live_campaign import armed_env, record_reconciled, release_kill_switch
from gates.chaos.model import (
    TERMINAL_FAULTS,
    ChaosOptions,
    Clock,
    Fault,
    FaultEvent,
    Mode,
    RunOutcome,
    RunPlan,
    Schedule,
)
from gates.chaos.rig import Rig
from gates.chaos.venue_audit import VenueAudit, audit_venue_orders

HANG_GRACE_SEC = 30.0
"""How long past its duration, counted from the moment its run started, an engine may take to exit."""
STARTUP_GRACE_SEC = 60.0
"""How long an engine may take to start its run (print its evidence directory) before that counts."""
EXIT_POLL_SEC = 0.1
RUN_START_POLL_SEC = 0.02
EVIDENCE_LINE = "evidence: "
STACK_DUMP_SEC = 2.0
"""How long a hung engine gets to print its threads' stacks (SIGQUIT) before it is killed."""
NEXT_START_TIMEOUT_SEC = 90.0
ENGINE_ENV = {
    "ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "2.2",
    "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "2.1",
    "ARB_WARN_POLICY": "continue",
}
"""Thresholds that make the simulator's seeded market trade every few seconds, and a policy that
keeps a run going through the WARNINGs its faults cause (its exit code still says 1)."""


def engine_command(*args: str) -> list[str]:
    """`arbitrage <args>` as a user runs it: the installed console script, else the module."""
    script = shutil.which("arbitrage")
    return [script, *args] if script else [sys.executable, "-m", "arbitrage.cli", *args]


def exits_in_time(
    process: subprocess.Popen[str], stdout: Path, started: float, duration_sec: float,
    grace_sec: float = HANG_GRACE_SEC, startup_sec: float = STARTUP_GRACE_SEC,
) -> bool:  # fmt: skip
    """Wait for the engine; False when it hung. Its run starts when it prints its evidence
    directory, and it has `grace_sec` past its duration from then to exit; start-up (imports,
    connections, a loaded machine) gets `startup_sec` of its own, so a slow start is not a hang."""
    deadline = started + startup_sec + duration_sec + grace_sec
    run_started = False
    while process.poll() is None:
        now = time.monotonic()
        if not run_started and EVIDENCE_LINE in stdout.read_text(errors="replace"):
            run_started = True
            deadline = min(deadline, now + duration_sec + grace_sec)
        if now >= deadline:
            return False
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=EXIT_POLL_SEC)
    return True


def run_start(
    process: subprocess.Popen[str], stdout: Path, started: float, startup_sec: float = STARTUP_GRACE_SEC
) -> float | None:
    """The moment the engine's run started (it printed its evidence directory), or None when it
    exited first or its start-up budget ran out."""
    deadline = started + startup_sec
    while process.poll() is None and time.monotonic() < deadline:
        if EVIDENCE_LINE in stdout.read_text(errors="replace"):
            return time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=RUN_START_POLL_SEC)
    return None


class RunDriver:
    """One plan on one rig: launch, strike and clear on time, wait, heal, next start, judge."""

    def __init__(
        self, rig: Rig, workdir: Path, keep: bool = False, clock: Clock = "launch", mode: Mode = "paper"
    ) -> None:
        self.rig = rig
        self.workdir = workdir
        self.keep = keep
        self.clock = clock
        self.live = mode == "live"
        self.env = {**os.environ, **ENGINE_ENV}

    def run(self, plan: RunPlan) -> RunOutcome:
        reset(self.rig)
        logs = self.workdir / f"run_{plan.index:04d}"
        logs.mkdir(parents=True, exist_ok=True)
        live_args, env, orders_before = [], self.env, 0
        if self.live:
            release_kill_switch(self.rig.direct_dsn)
            live_args, env = ["--mode", "live"], {**self.env, **armed_env()}
            orders_before = len(self.rig.sim.stats()["orders"])
        command = engine_command(
            "run", "--duration", f"{plan.duration_sec:g}s", "--seed", str(plan.engine_seed),
            "--heartbeat-interval", "2", *live_args, *self.rig.engine_args(),
        )  # fmt: skip
        started = time.monotonic()
        with open(logs / "stdout.txt", "w+") as out, open(logs / "stderr.txt", "w+") as err:
            process = subprocess.Popen(
                command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True,
                env=env, start_new_session=True,
            )  # fmt: skip
            self.rig.engine = process
            origin = started if self.clock == "launch" else run_start(process, logs / "stdout.txt", started)
            events = [] if origin is None else self._apply_faults(plan, process, origin)
            hung = not exits_in_time(process, logs / "stdout.txt", started, plan.duration_sec)
            if hung:
                process.send_signal(signal.SIGQUIT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=STACK_DUMP_SEC)
                process.kill()
                process.wait()
            wallclock = time.monotonic() - started
            out.seek(0)
            err.seek(0)
            result = EngineResult(
                exit_code=process.returncode, stdout=out.read(), stderr=err.read(), hung=hung,
                killed=any(e.kind == "sigkill" and e.action == "strike" for e in events),
            )  # fmt: skip
        self.rig.engine = None
        reset(self.rig)
        next_start_sec = 0.0
        if self._needs_next_start(result):
            next_started = time.monotonic()
            result.next_start = self._next_start(plan, logs)
            next_start_sec = time.monotonic() - next_started
        checker_started = time.monotonic()
        run_dir = result.run_dir()
        venue = self._venue_audit(result, orders_before) if self.live else None
        classification, reasons = judge(result, self.rig.direct_dsn, self._verify(result), venue)
        checker_sec = time.monotonic() - checker_started
        if self.live and run_dir is not None:
            record_reconciled(self.rig.direct_dsn, run_dir.name, note=f"checker: {classification}")
        kept = self._keep(run_dir, logs, keep=self.keep or classification in ("LOST", "UNEXPLAINED"))
        return RunOutcome(
            plan=plan, classification=classification, reasons=reasons, exit_code=result.exit_code,
            run_id=None if run_dir is None else run_dir.name, evidence_dir=kept, wallclock_sec=wallclock,
            checker_sec=checker_sec, next_start_sec=next_start_sec, events=events,
            stop_line=result.stop_line(), venue_orders=None if venue is None else venue.fates,
        )  # fmt: skip

    def _venue_audit(self, result: EngineResult, orders_before: int) -> VenueAudit:
        """The simulator's orders placed since the run began, held to the run (`venue_audit`)."""
        orders = self.rig.sim.stats()["orders"][orders_before:]
        run_dir = result.run_dir()
        run_id = None if run_dir is None else run_dir.name
        return audit_venue_orders(self.rig.direct_dsn, run_id, orders, result.killed)

    def _keep(self, run_dir: Path | None, logs: Path, *, keep: bool) -> Path | None:
        """Move the run's evidence off the rig's small disk: kept beside its logs, or deleted."""
        if run_dir is None or not run_dir.exists():
            return None
        target = logs / run_dir.name
        if keep:
            shutil.copytree(run_dir, target, dirs_exist_ok=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        if not keep:
            shutil.rmtree(logs, ignore_errors=True)
        return target if keep else None

    def _apply_faults(
        self, plan: RunPlan, process: subprocess.Popen[str], started: float
    ) -> list[FaultEvent]:
        """Strike and clear each fault at its moment after `started` (the clock's origin; the
        event's time is when the action began, and one that takes long says so); a fault the
        engine did not live to see is skipped."""
        steps: list[tuple[float, int, str, Fault]] = []
        for fault in plan.faults:
            steps.append((fault.at_sec, 1, "strike", fault))
            if fault.kind not in TERMINAL_FAULTS:
                steps.append((fault.at_sec + fault.duration_sec, 0, "clear", fault))
        events: list[FaultEvent] = []
        struck: set[Fault] = set()
        for at, _, action, fault in sorted(steps, key=lambda step: (step[0], step[1])):
            while (left := started + at - time.monotonic()) > 0 and process.poll() is None:
                time.sleep(min(left, 0.02))
            moment = time.monotonic() - started
            if action == "strike":
                if process.poll() is not None:
                    continue
                detail = _applied(strike, self.rig, fault)
                struck.add(fault)
            elif fault in struck:
                detail = _applied(clear, self.rig, fault)
            else:
                continue
            took = time.monotonic() - started - moment
            detail = f"{detail} (took {took * 1000:.0f} ms)" if took >= 0.05 else detail
            events.append(FaultEvent(fault.kind, action, moment, detail))  # type: ignore[arg-type]
        return events

    def _needs_next_start(self, result: EngineResult) -> bool:
        run_dir = result.run_dir()
        if result.killed or result.hung:
            return True
        if run_dir is None:
            return False
        if (run_dir.parent / ".ledger_pending" / f"{run_dir.name}.json").exists():
            return True
        try:
            with psycopg.connect(self.rig.direct_dsn, autocommit=True, connect_timeout=10) as conn:
                row = conn.execute(f"SELECT status FROM {RUNS} WHERE run_id = %s", (run_dir.name,)).fetchone()
        except psycopg.Error:
            return True
        return row is not None and row[0] == "running"

    def _next_start(self, plan: RunPlan, logs: Path) -> list[str]:
        """The next engine command, which replays pending journals and recovers crashed runs."""
        command = engine_command(
            "run", "--ticks", "1", "--seed", str(plan.engine_seed), *self.rig.engine_args()
        )
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=NEXT_START_TIMEOUT_SEC,
                env=self.env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            return [f"next start hung: {exc}", "Traceback (most recent call last): next start did not exit"]
        (logs / "next_start.txt").write_text(done.stdout + done.stderr)
        return [done.stdout, done.stderr]

    def _verify(self, result: EngineResult) -> dict[str, str] | None:
        """verify's own criteria on the run's evidence, with the database (analysis only, no report)."""
        run_dir = result.run_dir()
        if run_dir is None or not (run_dir / names.MANIFEST).exists():
            return None
        from gates.analyzer import analyze

        analysis = analyze(run_dir, self.rig.direct_dsn, dsn_explicit=True)
        return {criterion.name: criterion.verdict for criterion in analysis.criteria}


def _applied(action: Callable[[Rig, Fault], str], rig: Rig, fault: Fault) -> str:
    """Apply a strike or a clear; a failure to apply is part of the timeline, not the end of the run."""
    try:
        return action(rig, fault)
    except Exception as exc:
        return f"could not apply: {type(exc).__name__}: {exc}"


def _runner_failure(plan: RunPlan, exc: BaseException) -> RunOutcome:
    """A run the chaos machinery itself could not finish is UNEXPLAINED, never silently dropped."""
    reason = f"chaos runner error: {type(exc).__name__}: {exc}"
    return RunOutcome(plan, "UNEXPLAINED", [reason], None, None, None, 0.0, 0.0)


def run_campaign(
    schedule: Schedule, options: ChaosOptions, on_outcome: Callable[[RunOutcome], None]
) -> list[RunOutcome]:
    """Run every plan of `schedule` on `options.workers` rigs, calling `on_outcome` as each run is
    judged; returns the outcomes in index order."""
    plans: queue.Queue[RunPlan] = queue.Queue()
    for plan in schedule.runs:
        plans.put(plan)
    outcomes: list[RunOutcome] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        root = options.output_root / f"worker{number}"
        try:
            rig = Rig.create(root, postgres_dsn=options.postgres_dsn)
        except BaseException as exc:
            failures.append(exc)
            return
        try:
            driver = RunDriver(rig, root, keep=options.keep, clock=options.clock, mode=options.mode)
            while True:
                try:
                    plan = plans.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcome = driver.run(plan)
                except Exception as exc:
                    outcome = _runner_failure(plan, exc)
                with lock:
                    outcomes.append(outcome)
                    on_outcome(outcome)
        finally:
            rig.close()

    threads = [threading.Thread(target=worker, args=(n,), name=f"chaos-{n}") for n in range(options.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures and not outcomes:
        raise failures[0]
    return sorted(outcomes, key=lambda outcome: outcome.plan.index)
