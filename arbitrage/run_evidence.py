"""The run's evidence documents, assembled from the engine's state and written through `evidence/`.

The manifest is written at bootstrap with status `running` and rewritten last, with the
sha256 of every other file; a manifest still saying `running` therefore means the process
died before its final flush.
"""

from __future__ import annotations

import bisect
import importlib.metadata
import logging
import math
import os
import platform
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arbitrage import __version__
from arbitrage.schema.migrations import SCHEMA_VERSION as LEDGER_SCHEMA_VERSION
from evidence import names
from evidence.documents import DOCUMENTS
from evidence.schema import document_errors
from evidence.writer import FileDigest, atomic_write_json, file_digest

log = logging.getLogger("arbitrage.evidence")

_VERSIONED = ("psycopg", "redis", "ccxt", "pydantic", "jsonschema")
_OWN_VERSION_ATTRIBUTE = frozenset({"psycopg", "redis", "ccxt", "pydantic"})
"""Distributions whose top-level module states the distribution's version as `__version__`
(jsonschema's is deprecated and warns)."""


def new_run_id(phase: str, now: datetime | None = None) -> str:
    """`<phase>_<UTC yyyymmddTHHMMSSZ>_<6 hex>`: sortable by time, unique across hosts."""
    now = now or datetime.now(UTC)
    return f"{phase}_{now:%Y%m%dT%H%M%SZ}_{secrets.token_hex(3)}"


def git_state(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """(HEAD sha, dirty) of the working tree, or (None, None) outside a git checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha or None, bool(status.strip())


def versions() -> dict[str, str]:
    """Versions of Python and of the packages whose behaviour the evidence depends on."""
    found = {"python": platform.python_version(), "arbitrage-harness": __version__}
    for dist in _VERSIONED:
        found[dist] = _loaded_version(dist) or _installed_version(dist)
    return found


def _loaded_version(dist: str) -> str | None:
    """The version a module this process has already imported states (no search of sys.path)."""
    module = sys.modules.get(dist) if dist in _OWN_VERSION_ATTRIBUTE else None
    version = getattr(module, "__version__", None)
    return version if isinstance(version, str) else None


def _installed_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def percentiles(samples: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max (nearest rank) and the mean of loop latencies, None when there are no samples."""
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 3)

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 3),
        "mean": round(math.fsum(ordered) / len(ordered), 3),
    }


LATENCY_BOUNDS_MS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0)


def latency_histogram(samples: list[float]) -> dict[str, list[float] | list[int]]:
    """Counts of loop latencies per bucket: `counts[i]` is samples in (bounds[i-1], bounds[i]];
    the last count, one past the bounds, is everything slower than the last bound."""
    counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for sample in samples:
        counts[bisect.bisect_left(LATENCY_BOUNDS_MS, sample)] += 1
    return {"bounds_ms": list(LATENCY_BOUNDS_MS), "counts": counts}


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


@dataclass
class ManifestBase:
    """The manifest fields fixed at bootstrap."""

    run_id: str
    phase: str
    mode: str
    started_at: str
    duration_minutes: float | None
    expected_duration_seconds: float | None
    heartbeat_interval_seconds: float
    ticks: int | None
    seed: int
    market_source: str
    config: dict[str, Any]
    config_hash: str
    pid: int
    git_sha: str | None = None
    git_dirty: bool | None = None
    versions: dict[str, str] = field(default_factory=versions)
    profile: str | None = None
    """The ramp-up profile (`--profile`), shown beside the OPS phase the run id keeps."""
    postgres_data_dir: Path | None = None
    """The embedded PostgreSQL's data directory (absolute), so that `verify` can restart it to
    recount the ledger; None when the run used a configured DSN, which is never written."""
    ledger_schema_version: int = LEDGER_SCHEMA_VERSION
    """The ledger's schema version: a run starts only once its database records every migration
    of `arbitrage.schema` (`Ledger.open`)."""

    def document(self, status: str, files: dict[str, FileDigest], ended_at: str | None) -> dict[str, Any]:
        return {
            "schema_version": names.SCHEMA_VERSION,
            "run_id": self.run_id,
            "phase": self.phase,
            "mode": self.mode,
            "started_at": self.started_at,
            "ended_at": ended_at,
            "duration_minutes": self.duration_minutes,
            "expected_duration_seconds": self.expected_duration_seconds,
            "heartbeat_interval_seconds": self.heartbeat_interval_seconds,
            "ticks": self.ticks,
            "seed": self.seed,
            "market_source": self.market_source,
            "profile": self.profile,
            "git_sha": self.git_sha,
            "git_dirty": self.git_dirty,
            "config": self.config,
            "config_hash": self.config_hash,
            "versions": self.versions,
            "services": {"postgres_data_dir": _text(self.postgres_data_dir)},
            "ledger_schema_version": self.ledger_schema_version,
            "pid": self.pid,
            "status": status,
            "files": {name: digest.to_json() for name, digest in sorted(files.items())},
        }


CLOSEOUT_RESERVE = ".closeout-reserve"
"""Hidden, so never sealed: the space kept for the final flush."""
CLOSEOUT_RESERVE_BYTES = 8 * 1_048_576
"""Covers kpi.json (its trade events included), two chain summaries, the metrics snapshot and
the sealed manifest, each written next to its previous version, many times over."""


class EvidenceDir:
    """The run's evidence directory: writes documents and the manifest that seals them."""

    def __init__(self, path: Path, base: ManifestBase) -> None:
        self.path = path
        self.base = base
        path.mkdir(parents=True, exist_ok=False)

    def reserve_closeout_space(self, nbytes: int = CLOSEOUT_RESERVE_BYTES) -> None:
        """Allocate a hidden file now, so that a disk that fills during the run cannot stop the seal."""
        reserve = self.path / CLOSEOUT_RESERVE
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, nbytes)
            os.fsync(fd)
        except OSError:
            reserve.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    def release_closeout_space(self) -> None:
        """Give the reserved space back, just before the final flush; a missing reserve is fine."""
        (self.path / CLOSEOUT_RESERVE).unlink(missing_ok=True)

    def write_running_manifest(self) -> None:
        self.write(names.MANIFEST, self.base.document("running", {}, None))

    def write(self, name: str, document: dict[str, Any]) -> None:
        """Write one document, checked against its model first: a document that breaks the contract
        is still written (it is the run's evidence) and logged as the engine's own error."""
        problems = document_errors(name, document) if name in DOCUMENTS else []
        if problems:
            log.error("%s breaks its contract: %s", name, "; ".join(problems[:3]))
        atomic_write_json(self.path / name, document)

    def seal(self, status: str) -> None:
        """Rewrite the manifest last, with the sha256 and size of every other finished file.

        The files in `names.NEVER_SEALED` are left out: the engine log is still being appended to while
        the run exits, and the harness's and verify's outputs may be written at any time.
        """
        files = {
            entry.name: file_digest(entry)
            for entry in sorted(self.path.iterdir())
            if entry.is_file() and entry.name not in names.NEVER_SEALED and not entry.name.startswith(".")
        }
        ended_at = datetime.now(UTC).isoformat()
        self.write(names.MANIFEST, self.base.document(status, files, ended_at))
