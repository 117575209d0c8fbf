"""EngineProcess: the real engine as a subprocess, streamed, monitored and always cleaned up.

The ``engine`` fixture is a factory: each call returns a new, not yet started EngineProcess wired
to the session's services, this test's WARN->FAIL collector and the evidence root. The engine
logs JSON lines on stderr; each WARNING-or-worse record is fed to WARN->FAIL as it arrives, and
the monitor (D77-4 §2.3) aborts a run that logs an ERROR, goes quiet or grows out of bounds.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

import pytest

from evidence.names import HEARTBEAT, MONITOR_SUMMARY
from evidence.reader import CorruptEvidenceError, EvidenceBundle, load_evidence, read_jsonl
from harness import engine_report
from harness.cli_process import KEY_PREFIX_VAR, cli_command, operator_env
from harness.engine_args import SECRET_FLAGS, engine_phase
from harness.engine_output import EngineOutput
from harness.longrun import note_engine_phase
from harness.monitor import MonitorLimits, RunMonitor
from harness.options import SETTINGS_KEY
from harness.summary import SummaryRow
from harness.warnfail import WARNFAIL_KEY, LogEvent

__all__ = ["SECRET_FLAGS", "EngineLauncher", "EngineProcess", "launcher_for_test"]

TERMINATE_GRACE_SECONDS: Final = 10.0
READER_JOIN_SECONDS: Final = 10.0
_POLL_SECONDS: Final = 0.25


class EngineProcess:
    """One ``arbitrage run`` subprocess. Create it through the ``engine`` fixture.

    It owns the process's lifecycle (start, waits, signals, teardown); its output is read by an
    EngineOutput and reported through ``harness.engine_report``.
    """

    def __init__(
        self,
        *,
        command: Sequence[str],
        base_args: Sequence[str],
        extra_args: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        sink: Callable[[LogEvent], None],
        is_allowed: Callable[[LogEvent], bool],
        limits: MonitorLimits,
        on_start: Callable[[EngineProcess], None] | None = None,
    ) -> None:
        self._command = tuple(command)
        self._base_args = tuple(base_args)
        self._extra_args = tuple(extra_args)
        self._cwd = cwd
        self._env = dict(env)
        self._sink = sink
        self._is_allowed = is_allowed
        self._limits = limits
        self._on_start = on_start
        self._proc: subprocess.Popen[str] | None = None
        self._args: tuple[str, ...] = ()
        self._signal_lock = threading.Lock()
        self._output = EngineOutput(cwd, self._on_warning)
        self._monitor: RunMonitor | None = None
        self._t0: float | None = None
        self._t1: float | None = None
        self._finished = False
        self._abort_reported = False

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, args: Sequence[str]) -> EngineProcess:
        """Launch ``arbitrage run`` with the harness's arguments, then ``args``, then ``--engine-arg``s."""
        if self._proc is not None:
            raise RuntimeError("this EngineProcess was already started; call the engine fixture again")
        self._args = (*self._base_args, *args, *self._extra_args)
        self._t0 = time.monotonic()
        self._proc = subprocess.Popen(
            [*self._command, *self._args], cwd=self._cwd, env=self._env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            errors="replace", bufsize=1, start_new_session=True,
        )  # fmt: skip
        output = self._output
        self._monitor = RunMonitor(
            self._proc.pid, self._limits, lambda: output.evidence_dir, self._abort, lambda: output.metrics_url
        )
        output.pump(self._proc)
        self._monitor.start()
        if self._on_start is not None:
            self._on_start(self)
        return self

    def wait(self, timeout: float) -> int:
        """Wait for the engine to exit; fail the test if it is still running after ``timeout`` s.

        Also fails, with the monitor's reason, when the monitor aborted the run.
        """
        proc = self._started()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = self._stop_process(TERMINATE_GRACE_SECONDS)
            self._finish()
            pytest.fail(
                f"engine pid {proc.pid} still running after {timeout:.0f}s; terminated (exit {code}).\n"
                f"{self.describe()}",
                pytrace=False,
            )
        self._finish()
        self._raise_if_aborted()
        return proc.returncode

    def terminate(self, grace: float = TERMINATE_GRACE_SECONDS) -> int:
        """SIGTERM, then SIGKILL if the engine has not exited after ``grace`` seconds; the exit code."""
        code = self._stop_process(grace)
        self._finish()
        self._raise_if_aborted()
        return code

    def kill(self) -> int:
        """SIGKILL now; the exit code (``-9`` unless it had already exited)."""
        proc = self._started()
        with self._signal_lock:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._finish()
        return proc.returncode

    def close(self) -> None:
        """Teardown: stop the engine if it still runs and collect everything; idempotent."""
        if self._proc is None or self._finished:
            return
        self._stop_process(TERMINATE_GRACE_SECONDS)
        self._finish()

    def _stop_process(self, grace: float) -> int:
        proc = self._started()
        with self._signal_lock:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._t1 is None:
                self._t1 = time.monotonic()
        return proc.returncode

    def _abort(self, reason: str) -> None:
        self._stop_process(TERMINATE_GRACE_SECONDS)

    def _finish(self) -> None:
        if self._finished:
            return
        proc = self._started()
        proc.wait()
        if self._t1 is None:
            self._t1 = time.monotonic()
        self._output.join(READER_JOIN_SECONDS)
        assert self._monitor is not None
        self._monitor.stop()
        self._finished = True
        engine_report.write_monitor_summary(self._monitor, self.evidence_dir, proc.returncode)

    def _raise_if_aborted(self) -> None:
        reason = self.abort_reason
        if reason is not None and not self._abort_reported:
            self._abort_reported = True
            evidence = self.evidence_dir
            where = f" ({evidence / MONITOR_SUMMARY})" if evidence else ""
            pytest.fail(f"engine aborted by the monitor: {reason}{where}\n{self.describe()}", pytrace=False)

    def unreported_abort(self) -> str | None:
        """The monitor's abort reason if no call has failed the test with it yet."""
        return None if self._abort_reported else self.abort_reason

    def _started(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise RuntimeError("the engine was not started; call start(args) first")
        return self._proc

    def _on_warning(self, event: LogEvent) -> None:
        self._sink(event)
        assert self._monitor is not None
        self._monitor.on_event(event, self._is_allowed(event))

    # -- conditions ---------------------------------------------------------------------------
    def _wait_announced(self, ready: threading.Event, what: str, timeout: float) -> None:
        proc = self._started()
        deadline = time.monotonic() + timeout
        while not ready.wait(_POLL_SECONDS):
            if (proc.poll() is not None or time.monotonic() > deadline) and not ready.wait(1.0):
                pytest.fail(f"engine announced no {what}.\n{self.describe()}", pytrace=False)

    def wait_for_evidence_dir(self, timeout: float = 60.0) -> Path:
        """The evidence directory, once the engine has announced it."""
        self._wait_announced(self._output.evidence_announced, "evidence directory", timeout)
        evidence = self._output.evidence_dir
        assert evidence is not None
        return evidence

    def wait_for_metrics_url(self, timeout: float = 60.0) -> str:
        """The metrics endpoint's URL, once the engine has printed it (run with ``--metrics-port``)."""
        self._wait_announced(self._output.metrics_announced, "metrics endpoint", timeout)
        url = self._output.metrics_url
        assert url is not None
        return url

    def wait_for_heartbeats(self, count: int, timeout: float) -> int:
        """Block until ``heartbeat.jsonl`` holds ``count`` lines; fails on exit or deadline."""
        proc = self._started()
        deadline = time.monotonic() + timeout
        evidence = self.wait_for_evidence_dir(timeout)
        seen = 0
        while True:
            try:
                seen = len(read_jsonl(evidence / HEARTBEAT).records)
            except (FileNotFoundError, CorruptEvidenceError):
                seen = 0
            if seen >= count:
                return seen
            if time.monotonic() > deadline:
                pytest.fail(f"only {seen}/{count} heartbeats after {timeout:.0f}s.\n{self.describe()}")
            try:
                proc.wait(timeout=_POLL_SECONDS)
            except subprocess.TimeoutExpired:
                continue
            self._finish()
            self._raise_if_aborted()
            pytest.fail(f"engine exited before {count} heartbeats ({seen} seen).\n{self.describe()}")

    # -- what it left -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return None if self._proc is None else self._proc.pid

    @property
    def args(self) -> tuple[str, ...]:
        """The full argument list after the command (harness, test and ``--engine-arg`` parts)."""
        return self._args

    @property
    def logs(self) -> list[str]:
        """Every stderr line so far (JSON log lines and anything else)."""
        return self._output.stderr

    @property
    def stdout(self) -> list[str]:
        """Every stdout line so far."""
        return self._output.stdout

    @property
    def records(self) -> list[LogEvent]:
        """The stderr lines as log records, every level."""
        return self._output.records

    @property
    def metrics_url(self) -> str | None:
        """``http://127.0.0.1:PORT/metrics`` when the engine serves metrics, else None."""
        return self._output.metrics_url

    @property
    def evidence_dir(self) -> Path | None:
        """The evidence directory the engine announced, else None."""
        return self._output.evidence_dir

    @property
    def evidence(self) -> EvidenceBundle:
        """The evidence directory loaded through ``evidence.reader`` (never raises for bad files)."""
        return load_evidence(self.wait_for_evidence_dir(0))

    @property
    def run_id(self) -> str | None:
        """The run id (the evidence directory's name), once announced."""
        return self._output.run_id

    @property
    def phase(self) -> str:
        """The ``--phase`` this run was started with, read by the engine's own flags (default smoke)."""
        return engine_phase(self._args)

    @property
    def exit_code(self) -> int | None:
        """The exit code once it has exited (negative for a signal), else None."""
        return None if self._proc is None else self._proc.poll()

    @property
    def duration(self) -> float | None:
        """Seconds from launch to exit, as seen by the harness; None while it runs."""
        if self._t0 is None or self._t1 is None:
            return None
        return self._t1 - self._t0

    @property
    def abort_reason(self) -> str | None:
        """Why the monitor aborted the run, or None."""
        return None if self._monitor is None else self._monitor.abort_reason

    def describe(self, tail: int = 15) -> str:
        """Exit code, stop reason and the last stderr lines: context for assertion messages."""
        return engine_report.describe(self, finished=self._finished, tail=tail)

    def summary_row(self) -> SummaryRow | None:
        """The terminal-summary row of this run; None if it never started."""
        return engine_report.summary_row(self)


class EngineLauncher:
    """What the ``engine`` fixture yields: call it for a new EngineProcess."""

    def __init__(self, make: Callable[..., EngineProcess]) -> None:
        self._make = make
        self.processes: list[EngineProcess] = []

    def __call__(
        self,
        *,
        limits: MonitorLimits | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> EngineProcess:
        """A new engine; ``env`` adds variables, ``command`` replaces ``python -m arbitrage run``."""
        process = self._make(limits=limits or MonitorLimits(), env=env or {}, command=command)
        self.processes.append(process)
        return process


def launcher_for_test(
    request: pytest.FixtureRequest, postgres_dsn: str, redis_url: str, redis_key_prefix: str
) -> Iterator[EngineLauncher]:
    """The ``engine`` fixture's body (:mod:`harness.engine_fixture`): a factory of EngineProcess for
    this test; every process is stopped and summarised at teardown."""
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    warnfail = config.stash[WARNFAIL_KEY]
    item: pytest.Item = request.node
    settings.evidence_root.mkdir(parents=True, exist_ok=True)
    base_env = operator_env({"PYTHONUNBUFFERED": "1", KEY_PREFIX_VAR: redis_key_prefix})
    base_args = (
        "--log-format", "json", "--evidence-root", str(settings.evidence_root),
        "--postgres-dsn", postgres_dsn, "--redis-url", redis_url,
    )  # fmt: skip

    def make(limits: MonitorLimits, env: Mapping[str, str], command: Sequence[str] | None) -> EngineProcess:
        if limits.metrics.scrape_seconds is None:
            scrape = replace(limits.metrics, scrape_seconds=settings.metrics_scrape_seconds)
            limits = replace(limits, metrics=scrape)
        return EngineProcess(
            command=command or cli_command("run"),
            base_args=() if command else base_args,
            extra_args=() if command else settings.engine_args,
            cwd=config.rootpath,
            env={**base_env, **env},
            sink=warnfail.collector.feed,
            is_allowed=lambda event: warnfail.allows(item, event),
            limits=limits,
            on_start=lambda process: note_engine_phase(item, process.phase),
        )

    launcher = EngineLauncher(make)
    yield launcher
    engine_report.report_at_teardown(item, launcher.processes)
