"""The minimum evidence set as typed documents: one definition of what each file holds.

The engine writes these documents, every checker reads them, and the JSON Schemas shipped in
``evidence/schemas`` are generated from them (``python -m evidence.schema_export``), so the
writer, the readers and the byte-level contract cannot drift apart. Every document stays open to
extra keys (other parts of the engine add KPI groups); only the fields some rule reads are typed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from evidence.invariants import INVARIANT_NAMES
from evidence.names import CHAIN_SUMMARY, HEARTBEAT, KPI, MANIFEST

_ISO_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
_RUN_ID_PATTERN: Final = r"^(smoke|baseline|longrun)_\d{8}T\d{6}Z_[0-9a-f]{6}$"
_PROFILE_PATTERN: Final = r"^(live|paper)-phase[123]$"

RunId = Annotated[str, Field(pattern=_RUN_ID_PATTERN)]
Count = Annotated[int, Field(ge=0)]
Epoch = Annotated[float, Field(ge=0)]
IsoTimestamp = Annotated[str, Field(pattern=_ISO_PATTERN, json_schema_extra={"format": "date-time"})]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Measure = float | str | None
Phase = Literal["smoke", "baseline", "longrun"]

WRITTEN: Final[Mapping[str, bool]] = {"written": True}
"""Validation context for a document as written now (not as read back from an older run): the
readers' allowances for older layouts do not apply, so the model accepts what the schema does."""


class EvidenceDocument(BaseModel):
    """Base of every evidence document: extra keys are kept, so a newer writer stays readable."""

    model_config = ConfigDict(extra="allow", frozen=True)


class _Part(BaseModel):
    """A nested part of a document; also open to extra keys."""

    model_config = ConfigDict(extra="allow", frozen=True)


# -- manifest.json ---------------------------------------------------------------------------------
class FileEntry(_Part):
    """Digest of one sealed file, as listed in ``manifest.json["files"]``."""

    sha256: Sha256
    bytes: Count


class ManifestServices(_Part):
    """Where the run's services were, without secrets: verify restarts an embedded PostgreSQL from
    its data directory to recount the ledger."""

    postgres_data_dir: Annotated[str, Field(min_length=1, pattern=r"^/")] | None = Field(
        description="The absolute data directory of the embedded PostgreSQL the engine started; null when"
        " a DSN was configured (a DSN is never written)."
    )


class Manifest(EvidenceDocument):
    """Identity, configuration and file digests of one engine run; written at start (status
    ``running``) and rewritten at the end with the digest of every other file."""

    schema_version: Literal[1]
    run_id: RunId
    phase: Phase
    mode: Literal["paper", "live"]
    started_at: IsoTimestamp
    ended_at: IsoTimestamp | None
    duration_minutes: Annotated[float, Field(gt=0)] | None = Field(
        description="Expected (configured) duration; null when the run is tick-bounded."
    )
    expected_duration_seconds: Annotated[float, Field(gt=0)] | None = Field(
        description="The same expected duration in seconds; null when the run is tick-bounded."
    )
    heartbeat_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        description="Interval between heartbeat lines; every liveness check is held to it."
    )
    ticks: Count | None
    seed: int
    market_source: Annotated[str, Field(min_length=1)]
    profile: Annotated[str, Field(pattern=_PROFILE_PATTERN)] | None = Field(
        default=None,
        description="The D98 ramp-up profile the run was started with (`--profile`); null without one."
        " The run id and `phase` keep the OPS protocol's phase (smoke, baseline, longrun). Absent in"
        " runs older than the field: their profile is in config.run.profile.",
    )
    git_sha: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")] | None
    git_dirty: bool | None
    config: dict[str, Any] = Field(description="The effective configuration with secrets redacted.")
    config_hash: Sha256
    versions: dict[str, str]
    pid: Annotated[int, Field(ge=1)]
    services: ManifestServices | None = None
    ledger_schema_version: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="The ledger database's schema version (KIS §7.3): the last migration the engine found"
        " recorded in, or applied to, its PostgreSQL before the run; null in manifests written before it"
        " was recorded. ``schema_version`` is this document's own format version.",
    )
    status: Literal["running", "ended", "failed"]
    files: dict[str, FileEntry] = Field(description="Digest of every other evidence file, keyed by name.")

    @model_validator(mode="before")
    @classmethod
    def _typed_from_config(cls, data: Any, info: ValidationInfo) -> Any:
        """Manifests written before the typed fields existed carry them only inside ``config``."""
        if (
            not isinstance(data, dict)
            or info.context is WRITTEN
            or ("heartbeat_interval_seconds" in data and "expected_duration_seconds" in data)
        ):
            return data
        filled = dict(data)
        heartbeat = (data.get("config") or {}).get("heartbeat") or {}
        if "heartbeat_interval_seconds" not in filled and "interval_sec" in heartbeat:
            filled["heartbeat_interval_seconds"] = heartbeat["interval_sec"]
        minutes = data.get("duration_minutes")
        if "expected_duration_seconds" not in filled and "duration_minutes" in data:
            filled["expected_duration_seconds"] = None if minutes is None else float(minutes) * 60.0
        return filled

    @property
    def sealed(self) -> bool:
        """True once the engine's final flush rewrote the manifest (``ended`` or ``failed``)."""
        return self.status in SEALED_STATUSES


SEALED_STATUSES: Final[tuple[str, ...]] = ("ended", "failed")
"""Manifest statuses written by the final flush; ``running`` means the run was never sealed."""


# -- chain_summary.json ------------------------------------------------------------------------------
class InvariantDoc(_Part):
    """One invariant's verdict with the numbers behind it."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        json_schema_extra={
            "if": {"properties": {"applicable": {"const": True}}},
            "then": {"properties": {"passed": {"type": "boolean"}}},
            "else": {"properties": {"passed": {"type": "null"}}},
        },
    )

    name: Annotated[str, Field(min_length=1)]
    applicable: bool
    passed: bool | None
    observed: Measure
    limit: Measure
    detail: str

    @model_validator(mode="after")
    def _verdict_matches_applicability(self) -> InvariantDoc:
        if self.applicable == (self.passed is None):
            raise ValueError("an applicable invariant has passed true/false, a non-applicable one null")
        return self


def _name_matches_key(schema: dict[str, Any]) -> None:
    for key, node in schema["properties"].items():
        schema["properties"][key] = {"allOf": [node, {"properties": {"name": {"const": key}}}]}


class Invariants(_Part):
    """The four invariants keyed by name; each one's ``name`` repeats its key."""

    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=_name_matches_key)

    wallclock: InvariantDoc
    heartbeat_density: InvariantDoc
    db: InvariantDoc
    completeness: InvariantDoc

    @model_validator(mode="after")
    def _names_match_keys(self) -> Invariants:
        for key in INVARIANT_NAMES:
            if getattr(self, key).name != key:
                raise ValueError(f"invariant under {key!r} is named {getattr(self, key).name!r}")
        return self


class NetPnl(_Part):
    """Net realized PnL in both currencies."""

    krw: float
    usd: float


class WarningRecord(_Part):
    """One WARNING-or-worse log record the run counted."""

    level: Annotated[str, Field(min_length=1)]
    logger: str
    message: str
    created: Epoch


class ChainSummary(EvidenceDocument):
    """End-of-run outcome: timing, trade totals, stop reason, warnings and the four invariants."""

    run_id: RunId
    duration_seconds: Epoch
    expected_duration_seconds: Annotated[float, Field(gt=0)] | None
    run_started_epoch: Epoch
    run_ended_epoch: Epoch
    heartbeat_interval_seconds: Annotated[float, Field(gt=0)]
    closed_trades: Count
    wins: Count
    losses: Count
    opportunities_generated: Count
    net_pnl: NetPnl
    stop_reason: Annotated[str, Field(min_length=1)]
    exit_code: Literal[0, 1]
    warnings_count: Count
    warnings: list[WarningRecord]
    invariants: Invariants


# -- kpi.json --------------------------------------------------------------------------------------
class OpenPosition(_Part):
    """A position the stop-time flatten left open."""

    symbol: str
    trade_id: str
    reason: str


class DbCounts(_Part):
    """Inserts PostgreSQL acknowledged and those that failed."""

    db_inserts_ok: Count
    db_inserts_failed: Count


class LoopLatency(_Part):
    """Percentiles (ms) of a per-tick time of the main loop; null when no loop iteration completed."""

    p50: Annotated[float, Field(ge=0)] | None
    p95: Annotated[float, Field(ge=0)] | None
    p99: Annotated[float, Field(ge=0)] | None
    max: Annotated[float, Field(ge=0)] | None
    mean: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="Mean loop latency (D98 §2.2's goal); absent in older runs."
    )


class LedgerAccount(_Part):
    """The ledger's own account of its writes: legs acknowledged and legs left in the journal."""

    entry_legs_ok: Count
    exit_legs_ok: Count
    journal_pending: Count = Field(description="Records of any kind not acknowledged at stop.")
    legs_pending: Count = Field(description="Trade legs among them, kept in the run's journal.")


class ResidualSummary(_Part):
    """The run's hedge residual (``evidence.residual_rule``): entries, totals and the configured bound."""

    trades: Count
    total_abs_usd: Annotated[float, Field(ge=0)]
    entry_notional_usd: Annotated[float, Field(ge=0)]
    max_pct_of_notional: Annotated[float, Field(ge=0, le=100)]


class Kpi(EvidenceDocument):
    """Final KPI totals of one run: trades, PnL, DB write counts, loop latency and error tallies."""

    run_id: RunId
    closed_trades: Count
    wins: Count
    losses: Count
    open_positions: Count | list[OpenPosition] = Field(
        description=(
            "Positions left open at stop, each with its symbol, trade_id and why; a count in older runs."
        )
    )
    opportunities_generated: Count
    loop_count: Count
    net_pnl_krw: float
    net_pnl_usd: float
    db_counts: DbCounts
    loop_latency_ms: LoopLatency = Field(
        description="D98's loop latency: the engine's processing time per tick, its waits on the venues"
        " (market data, live orders, rate-limit waits) left out. In runs without tick_duration_ms, the"
        " whole tick."
    )
    tick_duration_ms: LoopLatency | None = Field(
        default=None,
        description="The whole tick, its waits on the venues included; absent in runs older than the split.",
    )
    market_errors: dict[str, Count] = Field(description="Counts keyed by reason or exchange.")
    rejected_books: dict[str, Count] = Field(description="Counts keyed by reason or exchange.")
    leg_unwinds: Count
    ledger: LedgerAccount | None = Field(default=None, description="Absent in runs older than the journal.")
    residual: ResidualSummary | None = Field(
        default=None, description="Absent in runs older than the hedge residual figures."
    )

    @property
    def open_position_count(self) -> int:
        """Positions reported open, whether listed or (older runs) counted."""
        listed = self.open_positions
        return len(listed) if isinstance(listed, list) else listed


# -- heartbeat.jsonl ---------------------------------------------------------------------------------
class HeartbeatKpi(_Part):
    """The KPI snapshot carried by each beat."""

    closed_trades: Count
    open_positions: Count
    opportunities_generated: Count
    wins: Count
    losses: Count
    net_pnl_krw: float
    net_pnl_usd: float
    db_inserts_ok: Count
    db_inserts_failed: Count


class HeartbeatGuards(_Part):
    """The guards' state at the beat."""

    peak_pnl: float
    drawdown_pct: float
    consecutive_losses: Count


class HeartbeatLine(EvidenceDocument):
    """One line of ``heartbeat.jsonl``: a liveness beat with a KPI snapshot, fsynced every interval.

    ``epoch_time`` is whole seconds so that a shell's integer arithmetic (OPS_PROTOCOL §6.2) works
    on it; ``epoch_time_precise`` is the same moment to the microsecond, for every density check.
    """

    timestamp: IsoTimestamp
    epoch_time: Count = Field(description="Whole seconds since the epoch (floor of epoch_time_precise).")
    epoch_time_precise: Epoch = Field(description="The beat's time in seconds since the epoch, fractional.")
    seq: Count
    event: Literal["start", "beat", "stop"]
    kpi: HeartbeatKpi
    guards: HeartbeatGuards
    last_loop_ts: Epoch | None
    loop_count: Count
    rss_mb: Annotated[float, Field(ge=0)]
    watchdog: Literal["OK", "WARN", "ERROR", "CRITICAL"]


def beat_epoch(record: Mapping[str, Any]) -> float | None:
    """The precise time of one heartbeat record; older lines carry only a fractional ``epoch_time``."""
    for key in ("epoch_time_precise", "epoch_time"):
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


DOCUMENTS: Final[Mapping[str, type[EvidenceDocument]]] = {
    MANIFEST: Manifest,
    CHAIN_SUMMARY: ChainSummary,
    HEARTBEAT: HeartbeatLine,
    KPI: Kpi,
}
"""Evidence file name -> its document model (for ``heartbeat.jsonl``: one line). Adding a document
type is one line here plus its model; the schema file follows from ``schema_file_name``."""


def schema_file_name(file_name: str) -> str:
    """``kpi.json`` -> ``kpi.schema.json``; ``heartbeat.jsonl`` -> ``heartbeat.schema.json``."""
    return file_name.split(".", 1)[0] + ".schema.json"


D = TypeVar("D", bound=EvidenceDocument)


def parse_document(model: type[D], document: object) -> D | None:
    """The typed document, or None when it does not satisfy its model (completeness says why)."""
    try:
        return model.model_validate(document)
    except ValidationError:
        return None
