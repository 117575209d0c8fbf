"""The run protocol: bootstrap -> loop -> validate -> flush, and the exit code (OPS_PROTOCOL §3).

Exit 0 only when every applicable invariant held, no WARNING was logged, and the run ended
by its own stop condition. Everything else, SIGTERM included, is exit 1. The evidence is
flushed in `finally`, whatever ended the loop.

The orchestrator runs the run's phases in order; `arbitrage.run_builder` constructs what they
use, `arbitrage.run_loop` ticks, and `arbitrage.run_closeout` ends the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from datetime import UTC, datetime
from functools import partial
from typing import TextIO

from arbitrage.config import AppConfig
from arbitrage.evidence_failure import STOP_REASON, EvidenceFailures
from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger, LedgerUnavailable
from arbitrage.logs import WarningCounter, attach_file_log
from arbitrage.market.backoff import RateLimits
from arbitrage.ops.debug_load import DebugLoad
from arbitrage.ops.run_gate import open_kill_switch
from arbitrage.progress import RunProgress
from arbitrage.recovery import recover_at_start
from arbitrage.run_builder import BootstrapError, RunBuilder, admit, connect, manifest_base
from arbitrage.run_closeout import RunCloseout
from arbitrage.run_evidence import EvidenceDir, ManifestBase, new_run_id
from arbitrage.run_loop import TradingLoop
from arbitrage.run_parts import RUN_LOGGER, Connected, RunClock
from arbitrage.services import EmbeddedServices, ServiceStartError
from arbitrage.state import StateUnavailable
from arbitrage.stop_request import StopRequest, startup_refusal
from evidence import names

log = logging.getLogger(RUN_LOGGER)


class Orchestrator:
    """One engine run, from bootstrap to the sealed evidence directory."""

    def __init__(self, config: AppConfig, out: TextIO = sys.stdout, stop: StopRequest | None = None) -> None:
        self.config = config
        self.out = out
        self.stop_request = stop or StopRequest()
        self.evidence_failures = EvidenceFailures(partial(self.request_stop, STOP_REASON))
        self.warnings = WarningCounter(on_first=self._on_first_warning)
        self.run_id = new_run_id(config.run.phase)
        self.rate_limits = RateLimits(config.rate_limit)
        self.loop = TradingLoop(
            config, self.stop_request, self.request_stop, self.evidence_failures, self.rate_limits
        )
        self.builder = RunBuilder(
            config, self.run_id, out, self.rate_limits, self.evidence_failures, self.request_stop,
            self.stop_request.deadline,
        )  # fmt: skip
        self.ledger: Ledger | None = None

    # -- stopping -----------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask the loop to finish its current iteration and stop; the first reason wins."""
        self.stop_request.request(reason)
        if self.ledger is not None:
            self.ledger.expedite()

    def _on_first_warning(self, record: logging.LogRecord) -> None:
        if self.config.warn_policy == "stop":
            self.request_stop("WARNING_LOGGED")

    def _opened(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def _stopped_in_startup(self) -> bool:
        """True (and the operator's line printed) when a stop came before the evidence directory."""
        refusal = startup_refusal(self.stop_request)
        if refusal is not None:
            print(refusal, file=sys.stderr, flush=True)
        return refusal is not None

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> int:
        """The whole run; 0 only for a run that ended by its own stop condition with every check held."""
        if self._stopped_in_startup():
            return 1
        logging.getLogger().addHandler(self.warnings)
        services = EmbeddedServices(self.config.services.data_dir)
        conn: Connected | None = None
        try:
            try:
                conn = connect(self.config, services, self._opened)
            except (BootstrapError, LedgerUnavailable, StateUnavailable, ServiceStartError) as exc:
                print(f"arbitrage: {exc}", file=sys.stderr, flush=True)
                return 1
            if not recover_at_start(self.config, conn.endpoints.postgres_dsn):
                return 1
            refusal = admit(self.config, self.run_id, conn)
            if refusal is not None:
                print(f"arbitrage: {refusal}", file=sys.stderr, flush=True)
                return 1
            conn.kill_switch = open_kill_switch(self.config, conn.endpoints)
            return self._run_connected(conn)
        finally:
            if conn is not None:
                conn.close()
            services.stop()
            logging.getLogger().removeHandler(self.warnings)

    def _run_connected(self, conn: Connected) -> int:
        cfg = self.config
        started_at = datetime.now(UTC)
        base = manifest_base(cfg, self.run_id, started_at, conn.endpoints)
        if self._stopped_in_startup():
            return 1
        try:
            conn.ledger.record_run_start(
                self.run_id,
                cfg.run.phase,
                cfg.run.mode,
                started_at,
                cfg.run.seed,
                base.git_sha,
                base.config_hash,
            )
        except LedgerUnavailable as exc:
            print(f"arbitrage: {exc}", file=sys.stderr, flush=True)
            return 1
        evidence = self._open_evidence(conn.ledger, base)
        if evidence is None:
            return 1
        print(f"evidence: {evidence.path}", file=self.out, flush=True)
        return self._with_evidence(conn, evidence)

    def _open_evidence(self, ledger: Ledger, base: ManifestBase) -> EvidenceDir | None:
        """The run's evidence directory with its close-out space reserved and its running manifest;
        None (the run refused, its line printed) when it cannot be written."""
        self.evidence_failures.where = self.config.run.evidence_root / self.run_id
        try:
            evidence = EvidenceDir(self.config.run.evidence_root / self.run_id, base)
        except OSError as exc:
            self._evidence_refused(ledger, exc)
            return None
        try:
            evidence.reserve_closeout_space()
            evidence.write_running_manifest()
        except OSError as exc:
            evidence.release_closeout_space()
            self._evidence_refused(ledger, exc)
            return None
        return evidence

    def _with_evidence(self, conn: Connected, evidence: EvidenceDir) -> int:
        """Trade and close out with the engine log and the ledger's journal in the evidence directory."""
        cfg = self.config
        file_log = attach_file_log(evidence.path / names.ENGINE_LOG, self.evidence_failures.report)
        journal: LedgerJournal | None = None
        try:
            journal = LedgerJournal(evidence.path, cfg.run.evidence_root, self.run_id)
            conn.ledger.attach_journal(journal)
            conn.ledger.on_journal_error = self.evidence_failures.report
            if cfg.services.ledger_group_commit:
                conn.ledger.start_group_commit(cfg.services.ledger_queue_records)
            return self._trade_and_flush(conn, evidence, journal, self._register(conn, evidence.base))
        except OSError as exc:
            code = self._evidence_refused(conn.ledger, exc)
            with contextlib.suppress(OSError):
                evidence.release_closeout_space()
                evidence.seal("failed")
            return code
        finally:
            if journal is not None:
                journal.close()
            with contextlib.suppress(OSError):
                evidence.release_closeout_space()
            logging.getLogger().removeHandler(file_log)
            file_log.close()

    def _register(self, conn: Connected, base: ManifestBase) -> str | None:
        """The run's Redis entry and its RUN_START event; the refusal when either cannot be written."""
        try:
            conn.state.register(
                self.run_id, {"status": "running", "pid": os.getpid(), "started_at": base.started_at}
            )
            conn.ledger.record_event(
                self.run_id, "RUN_START", {"phase": self.config.run.phase, "config_hash": base.config_hash}
            )
        except (LedgerUnavailable, StateUnavailable) as exc:
            return str(exc)
        return None

    def _evidence_refused(self, ledger: Ledger, exc: OSError) -> int:
        """A registered run whose evidence could not be written before it traded: the operator's one
        line, the `runs` row finalized as failed, exit 1."""
        print(self.evidence_failures.report(exc).line(), file=sys.stderr, flush=True)
        ledger.record_run_end(self.run_id, "failed", STOP_REASON, 1, 0, datetime.now(UTC))
        return 1

    def _trade_and_flush(
        self, conn: Connected, evidence: EvidenceDir, journal: LedgerJournal, refusal: str | None
    ) -> int:
        """Trade, then close out; a `refusal` (the run could not be set up) skips straight to the
        close-out, so that a run that never traded still leaves the whole minimum set."""
        cfg = self.config
        expected = cfg.run.expected_seconds()
        parts = self.builder.build(self.loop, conn, evidence, refusal)
        clock = RunClock(time.monotonic(), expected)
        parts.watcher.start()
        load = DebugLoad(cfg.debug)
        if parts.refusal is None:
            parts.supervisor.start_watchdog()
            load.start()
        progress = RunProgress(
            expected, cfg.run.ticks, mode="log" if cfg.run.log_format == "json" else "auto"
        )
        try:
            if parts.fetcher is not None:
                self.loop.run(parts.fetcher, parts, progress, clock)
        except Exception as exc:
            log.exception("trading loop crashed: %s", exc)
            self.request_stop(f"EXCEPTION_{type(exc).__name__}")
        finally:
            load.stop()
            duration, drain_until = self.loop.wind_down(parts, conn.ledger, progress, clock)
        closeout = RunCloseout(self.run_id, self.out, self.evidence_failures, self.warnings)
        facts = closeout.facts(parts, conn.ledger, evidence, expected, duration, self.stop_request.reason)
        kpi = self.loop.kpi(self.run_id, parts.trader, parts.watcher)
        return closeout.close(conn, evidence, journal, parts, facts, kpi, drain_until)
