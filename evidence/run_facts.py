"""RunFacts: the figures D77-4's criteria and KPIs are computed from, read once from a run's documents.

The criteria and the KPI catalog judge numbers, not files: this module is the one place that knows
where each number lives (kpi.json, chain_summary.json, the heartbeat lines, engine.log), so every
judge that builds its facts here reads the same evidence the same way. A figure the evidence does
not hold is None, never a guessed default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from evidence.documents import beat_epoch

TRACEBACK: Final = "Traceback (most recent call last)"
CRASHED_STATUSES: Final = frozenset({"running", "crashed"})
"""Manifest statuses that mean the engine died before sealing its run (`running`) or was found dead."""


@dataclass(frozen=True)
class Beat:
    """What one heartbeat line says about the run at its moment."""

    epoch: float
    closed_trades: int | None
    wins: int | None
    cpu_pct: float | None
    rss_mb: float | None
    drawdown_pct: float | None
    peak_pnl: float | None
    consecutive_losses: int | None


@dataclass(frozen=True)
class RunFacts:
    """One run's documents, reduced to what the D77-4 criteria and KPIs need."""

    phase: str | None
    manifest_status: str | None
    run_seconds: float | None
    run_start: float | None
    run_end: float | None
    beats: tuple[Beat, ...]
    traceback_count: int | None
    kpi: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    profile: str | None = None
    """The ramp-up profile the run was started with (`config.run.profile`), else None."""

    def number(self, *path: str) -> float | None:
        """A number from kpi.json by its key path, else None."""
        return number_at(self.kpi, *path)

    def alerts(self, key: str) -> float | None:
        """One figure of kpi.json's `alerts` summary."""
        return self.number("alerts", key)

    def tally(self, key: str) -> int | None:
        """The sum of a kpi.json counter map (`rejected_books`, `market_errors`...), else None."""
        value = self.kpi.get(key)
        if not isinstance(value, Mapping):
            return None
        return sum(v for v in value.values() if isinstance(v, int) and not isinstance(v, bool))

    @property
    def crashed(self) -> bool:
        """The manifest says the engine never sealed its run."""
        return self.manifest_status in CRASHED_STATUSES


def number_at(doc: Mapping[str, Any] | None, *path: str) -> float | None:
    """Follow `path` through nested mappings; a finite number at the end, else None."""
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)


def _count(doc: Mapping[str, Any] | None, *path: str) -> int | None:
    value = number_at(doc, *path)
    return None if value is None else int(value)


def profile_of(manifest: Mapping[str, Any] | None) -> str | None:
    """The profile a run was started with: the manifest's `profile`, else (older runs) its
    `config.run.profile`, else None."""
    named = (manifest or {}).get("profile")
    if isinstance(named, str):
        return named
    config = (manifest or {}).get("config")
    run = config.get("run") if isinstance(config, Mapping) else None
    profile = run.get("profile") if isinstance(run, Mapping) else None
    return profile if isinstance(profile, str) else None


def beat_from_line(line: Mapping[str, Any]) -> Beat | None:
    """One heartbeat line as a Beat; None when it carries no time."""
    epoch = beat_epoch(line)
    if epoch is None:
        return None
    return Beat(
        epoch=epoch,
        closed_trades=_count(line, "kpi", "closed_trades"),
        wins=_count(line, "kpi", "wins"),
        cpu_pct=number_at(line, "sys", "cpu_pct"),
        rss_mb=number_at(line, "rss_mb"),
        drawdown_pct=number_at(line, "guards", "drawdown_pct"),
        peak_pnl=number_at(line, "guards", "peak_pnl"),
        consecutive_losses=_count(line, "guards", "consecutive_losses"),
    )


def facts_from_documents(
    manifest: Mapping[str, Any] | None,
    summary: Mapping[str, Any] | None,
    kpi: Mapping[str, Any] | None,
    heartbeats: Sequence[Mapping[str, Any]],
    engine_log: str | None,
) -> RunFacts:
    """Reduce a run's parsed documents (any may be missing) to RunFacts; `engine_log` is its text."""
    beats = tuple(sorted((b for line in heartbeats if (b := beat_from_line(line))), key=lambda b: b.epoch))
    start, end = number_at(summary, "run_started_epoch"), number_at(summary, "run_ended_epoch")
    if start is None and beats:
        start = beats[0].epoch
    if end is None and beats:
        end = beats[-1].epoch
    seconds = number_at(summary, "duration_seconds")
    if seconds is None and start is not None and end is not None:
        seconds = end - start
    phase, status = (manifest or {}).get("phase"), (manifest or {}).get("status")
    return RunFacts(
        phase=phase if isinstance(phase, str) else None,
        manifest_status=status if isinstance(status, str) else None,
        run_seconds=seconds,
        run_start=start,
        run_end=end,
        beats=beats,
        traceback_count=None if engine_log is None else engine_log.count(TRACEBACK),
        kpi=kpi or {},
        summary=summary or {},
        profile=profile_of(manifest),
    )
