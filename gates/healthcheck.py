"""Liveness of a running engine from its heartbeat (OPS_PROTOCOL §6).

A fresh heartbeat file is not enough: the beat comes from its own thread, so a stuck trading loop
still beats. The check therefore also demands that `loop_count` moved over the last few beats.
`gates/healthcheck.sh` applies the same rules where only a shell is available.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from evidence import names
from evidence.documents import Manifest, beat_epoch, parse_document
from evidence.reader import CorruptEvidenceError, read_json, read_jsonl
from gates.health_defaults import DEFAULT_MAX_AGE_SECONDS, DEFAULT_STALL_BEATS


@dataclass(frozen=True)
class Health:
    """The verdict and the one line an orchestrator (Docker, a pager) shows."""

    healthy: bool
    message: str


def resolve_run_dir(path: Path) -> Path:
    """`path` itself when it is a run directory, else its most recently modified run directory."""
    if (path / names.HEARTBEAT).exists() or (path / names.MANIFEST).exists() or not path.is_dir():
        return path
    runs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else path


def ended_run(run_dir: Path) -> Health | None:
    """The verdict on a run whose manifest is sealed: it ended, so freshness no longer applies.

    An ``ended`` seal is healthy, a ``failed`` one is not; None while the run is still going (or
    its manifest cannot be read, which the heartbeat checks then judge).
    """
    try:
        manifest = parse_document(Manifest, read_json(run_dir / names.MANIFEST))
    except (OSError, CorruptEvidenceError):
        return None
    if manifest is None or not manifest.sealed:
        return None
    verdict = "PASS" if manifest.status == "ended" else "FAIL"
    return Health(
        manifest.status == "ended", f"{verdict}: run ended (sealed {manifest.status} at {manifest.ended_at})"
    )


def check_health(
    path: Path,
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
    stall_beats: int = DEFAULT_STALL_BEATS,
    now: float | None = None,
) -> Health:
    """Healthy when the newest beat is at most `max_age_seconds` old and the loop advanced; a
    finished run (sealed manifest) is judged by its seal instead, see `ended_run`."""
    run_dir = resolve_run_dir(Path(path))
    ended = ended_run(run_dir)
    if ended is not None:
        return ended
    heartbeat = run_dir / names.HEARTBEAT
    try:
        records = read_jsonl(heartbeat).records
    except FileNotFoundError:
        return Health(False, f"FAIL: heartbeat.jsonl not found in {run_dir}")
    except CorruptEvidenceError as exc:
        return Health(False, f"FAIL: {exc.describe(names.HEARTBEAT)}")
    except OSError as exc:
        return Health(False, f"FAIL: heartbeat.jsonl unreadable: {exc.strerror or exc}")
    if not records:
        return Health(False, "FAIL: heartbeat.jsonl has no complete lines")
    last = records[-1]
    epoch, count = beat_epoch(last), last.get("loop_count")
    if epoch is None or not isinstance(count, int):
        return Health(False, "FAIL: last heartbeat line lacks epoch_time or loop_count")
    age = (time.time() if now is None else now) - epoch
    if age > max_age_seconds:
        return Health(False, f"FAIL: heartbeat stale (age={age:.0f}s > {max_age_seconds:g}s)")
    recent = [r.get("loop_count") for r in records[-stall_beats:]]
    if len(recent) >= stall_beats and len(set(recent)) == 1:
        return Health(
            False,
            f"FAIL: loop made no progress (loop_count {count} unchanged over the last {stall_beats} beats)",
        )
    return Health(True, f"PASS: heartbeat fresh (age={max(age, 0.0):.0f}s), loop_count {count}")
