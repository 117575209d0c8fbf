"""EngineProcess: the real engine as a subprocess, streamed, monitored and always cleaned up.

The ``engine`` fixture is a factory: each call returns a new, not yet started EngineProcess wired
to the session's services, this test's WARN->FAIL collector and the evidence root. The engine
logs JSON lines on stderr; each WARNING-or-worse record is fed to WARN->FAIL as it arrives, and
the monitor (D77-4 §2.3) aborts a run that logs an ERROR, goes quiet or grows out of bounds.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Final

import pytest

from evidence.names import HEARTBEAT, MONITOR_SUMMARY
from evidence.reader import CorruptEvidenceError, EvidenceBundle, load_evidence, read_jsonl
from evidence.writer import atomic_write_json
from harness.longrun import note_engine_phase
from harness.monitor import MonitorLimits, RunMonitor
from harness.options import SETTINGS_KEY
from harness.summary import USER_PROPERTY, SummaryRow, build_row
from harness.warnfail import WARNFAIL_KEY, LogEvent

TERMINATE_GRACE_SECONDS: Final = 10.0
READER_JOIN_SECONDS: Final = 10.0
_POLL_SECONDS: Final = 0.25
SECRET_FLAGS: Final = frozenset({"--postgres-dsn", "--redis-url"})


class EngineProcess:
    """One ``arbitrage run`` subprocess. Create it through the ``engine`` fixture."""

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
        self._lock = threading.Lock()
        self._signal_lock = threading.Lock()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._records: list[LogEvent] = []
        self._readers: list[threading.Thread] = []
        self._evidence_dir: Path | None = None
        self._evidence_ready = threading.Event()
        self._metrics_url: str | None = None
        self._metrics_ready = threading.Event()
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
        self._monitor = RunMonitor(
            self._proc.pid, self._limits, lambda: self._evidence_dir, self._abort, lambda: self._metrics_url
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for target, stream in (
            (self._read_stdout, self._proc.stdout),
            (self._read_stderr, self._proc.stderr),
        ):
            reader = threading.Thread(
                target=target, args=(stream,), name=f"engine-{target.__name__}", daemon=True
            )
            reader.start()
            self._readers.append(reader)
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
        for reader in self._readers:
            reader.join(timeout=READER_JOIN_SECONDS)
        assert self._monitor is not None
        self._monitor.stop()
        self._finished = True
        if self._evidence_dir is not None and self._evidence_dir.is_dir():
            document = self._monitor.document(proc.returncode, self.run_id)
            atomic_write_json(self._evidence_dir / MONITOR_SUMMARY, document)

    def _raise_if_aborted(self) -> None:
        reason = self.abort_reason
        if reason is not None and not self._abort_reported:
            self._abort_reported = True
            where = f" ({self._evidence_dir / MONITOR_SUMMARY})" if self._evidence_dir else ""
            pytest.fail(f"engine aborted by the monitor: {reason}{where}\n{self.describe()}", pytrace=False)

    def unreported_abort(self) -> str | None:
        """The monitor's abort reason if no call has failed the test with it yet."""
        return None if self._abort_reported else self.abort_reason

    def _started(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise RuntimeError("the engine was not started; call start(args) first")
        return self._proc

    # -- streams ------------------------------------------------------------------------------
    def _read_stdout(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            with self._lock:
                self._stdout.append(line)
            if line.startswith("evidence: ") and self._evidence_dir is None:
                path = Path(line.removeprefix("evidence: ").strip())
                self._evidence_dir = path if path.is_absolute() else self._cwd / path
                self._evidence_ready.set()
            elif line.startswith("metrics: ") and self._metrics_url is None:
                self._metrics_url = line.removeprefix("metrics: ").strip()
                self._metrics_ready.set()

    def _read_stderr(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            event = self._parse(line)
            with self._lock:
                self._stderr.append(line)
                self._records.append(event)
            if event.levelno >= logging.WARNING:
                self._sink(event)
                assert self._monitor is not None
                self._monitor.on_event(event, self._is_allowed(event))

    def _parse(self, line: str) -> LogEvent:
        origin = f"engine pid {self.pid}" + (f" run {self.run_id}" if self.run_id else "")
        return LogEvent.from_line(line, origin)

    # -- conditions ---------------------------------------------------------------------------
    def _wait_announced(self, ready: threading.Event, what: str, timeout: float) -> None:
        proc = self._started()
        deadline = time.monotonic() + timeout
        while not ready.wait(_POLL_SECONDS):
            if (proc.poll() is not None or time.monotonic() > deadline) and not ready.wait(1.0):
                pytest.fail(f"engine announced no {what}.\n{self.describe()}", pytrace=False)

    def wait_for_evidence_dir(self, timeout: float = 60.0) -> Path:
        """The evidence directory, once the engine has announced it."""
        self._wait_announced(self._evidence_ready, "evidence directory", timeout)
        assert self._evidence_dir is not None
        return self._evidence_dir

    def wait_for_metrics_url(self, timeout: float = 60.0) -> str:
        """The metrics endpoint's URL, once the engine has printed it (run with ``--metrics-port``)."""
        self._wait_announced(self._metrics_ready, "metrics endpoint", timeout)
        assert self._metrics_url is not None
        return self._metrics_url

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
        return None if self._proc is None else self._proc.pid

    @property
    def args(self) -> tuple[str, ...]:
        return self._args

    @property
    def logs(self) -> list[str]:
        """Every stderr line so far (JSON log lines and anything else)."""
        with self._lock:
            return list(self._stderr)

    @property
    def stdout(self) -> list[str]:
        with self._lock:
            return list(self._stdout)

    @property
    def records(self) -> list[LogEvent]:
        """The stderr lines as log records, every level."""
        with self._lock:
            return list(self._records)

    @property
    def metrics_url(self) -> str | None:
        """``http://127.0.0.1:PORT/metrics`` when the engine serves metrics, else None."""
        return self._metrics_url

    @property
    def evidence_dir(self) -> Path | None:
        return self._evidence_dir

    @property
    def evidence(self) -> EvidenceBundle:
        """The evidence directory loaded through ``evidence.reader`` (never raises for bad files)."""
        return load_evidence(self.wait_for_evidence_dir(0))

    @property
    def run_id(self) -> str | None:
        return None if self._evidence_dir is None else self._evidence_dir.name

    @property
    def phase(self) -> str:
        """The ``--phase`` this run was started with (the engine's default, smoke, if none)."""
        for index, arg in enumerate(self._args):
            if arg == "--phase" and index + 1 < len(self._args):
                return self._args[index + 1]
            if arg.startswith("--phase="):
                return arg.split("=", 1)[1]
        return "smoke"

    @property
    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def duration(self) -> float | None:
        """Seconds from launch to exit, as seen by the harness; None while it runs."""
        if self._t0 is None or self._t1 is None:
            return None
        return self._t1 - self._t0

    @property
    def abort_reason(self) -> str | None:
        return None if self._monitor is None else self._monitor.abort_reason

    def describe(self, tail: int = 15) -> str:
        """Exit code, stop reason and the last stderr lines: context for assertion messages."""
        stop = "-"
        if self._evidence_dir is not None and self._finished:
            stop = str((load_evidence(self._evidence_dir).chain_summary or {}).get("stop_reason", "-"))
        lines = "\n".join(f"    {line[:400]}" for line in self.logs[-tail:])
        shown = [
            "<redacted>" if previous in SECRET_FLAGS else arg
            for previous, arg in zip(("", *self._args), self._args, strict=False)
        ]
        return (
            f"engine pid {self.pid} exit={self.exit_code} stop_reason={stop} evidence={self._evidence_dir}\n"
            f"  args: {' '.join(shown)}\n  last stderr lines:\n{lines}"
        )

    def summary_row(self) -> SummaryRow | None:
        """The terminal-summary row of this run; None if it never started."""
        if self._proc is None:
            return None
        bundle = None if self._evidence_dir is None else load_evidence(self._evidence_dir)
        return build_row(bundle, self.exit_code, self.abort_reason, self.phase, self._proc.pid)


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


@pytest.fixture
def engine(
    request: pytest.FixtureRequest, postgres_dsn: str, redis_url: str, redis_key_prefix: str
) -> Iterator[EngineLauncher]:
    """Factory of EngineProcess for this test; every process is stopped and summarised at teardown."""
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    warnfail = config.stash[WARNFAIL_KEY]
    item: pytest.Item = request.node
    settings.evidence_root.mkdir(parents=True, exist_ok=True)
    base_env = {key: value for key, value in os.environ.items() if key not in {"POSTGRES_DSN", "REDIS_URL"}}
    base_env |= {"PYTHONUNBUFFERED": "1", "ARB_SERVICES__REDIS_KEY_PREFIX": redis_key_prefix}
    base_args = (
        "--log-format", "json", "--evidence-root", str(settings.evidence_root),
        "--postgres-dsn", postgres_dsn, "--redis-url", redis_url,
    )  # fmt: skip

    def make(limits: MonitorLimits, env: Mapping[str, str], command: Sequence[str] | None) -> EngineProcess:
        if limits.metrics.scrape_seconds is None:
            scrape = replace(limits.metrics, scrape_seconds=settings.metrics_scrape_seconds)
            limits = replace(limits, metrics=scrape)
        return EngineProcess(
            command=command or (sys.executable, "-m", "arbitrage", "run"),
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
    unreported: list[str] = []
    for process in launcher.processes:
        process.close()
        row = process.summary_row()
        if row is not None:
            item.user_properties.append((USER_PROPERTY, row.to_json()))
        reason = process.unreported_abort()
        if reason is not None:
            unreported.append(f"engine pid {process.pid}: {reason}")
    if unreported:
        pytest.fail("engine aborted by the monitor:\n" + "\n".join(unreported), pytrace=False)
