"""The shipped JSON Schemas encode the evidence contract: required fields, types, enums, patterns."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest

from evidence.names import CHAIN_SUMMARY, HEARTBEAT, KPI, MANIFEST, SCHEMA_VERSION
from evidence.schema import check_schemas, load_schema, validation_errors
from tests.evidence_factory import REMOVE, make_chain_summary, make_heartbeats, make_kpi, make_manifest

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

REQUIRED = {
    MANIFEST: {
        "schema_version", "run_id", "phase", "mode", "started_at", "ended_at", "duration_minutes", "ticks",
        "seed", "market_source", "git_sha", "git_dirty", "config", "config_hash", "versions", "pid",
        "status", "files", "expected_duration_seconds", "heartbeat_interval_seconds",
    },
    CHAIN_SUMMARY: {
        "run_id", "duration_seconds", "expected_duration_seconds", "run_started_epoch", "run_ended_epoch",
        "heartbeat_interval_seconds", "closed_trades", "wins", "losses", "opportunities_generated",
        "net_pnl", "stop_reason", "exit_code", "warnings_count", "warnings", "invariants",
    },
    HEARTBEAT: {
        "timestamp", "epoch_time", "epoch_time_precise", "seq", "event", "kpi", "guards", "last_loop_ts",
        "loop_count", "rss_mb", "watchdog",
    },
    KPI: {
        "run_id", "closed_trades", "wins", "losses", "open_positions", "opportunities_generated",
        "loop_count", "net_pnl_krw", "net_pnl_usd", "db_counts", "loop_latency_ms", "market_errors",
        "rejected_books", "leg_unwinds",
    },
}  # fmt: skip


def valid(name: str) -> dict[str, Any]:
    builders = {MANIFEST: make_manifest, CHAIN_SUMMARY: make_chain_summary, KPI: make_kpi}
    return make_heartbeats()[1] if name == HEARTBEAT else builders[name]()


def test_all_schemas_are_valid_draft_2020_12() -> None:
    assert check_schemas() == []


@pytest.mark.parametrize(
    "schema_file",
    ["manifest.schema.json", "chain_summary.schema.json", "heartbeat.schema.json", "kpi.schema.json"],
)
def test_schemas_ship_as_package_data(schema_file: str) -> None:
    assert resources.files("evidence").joinpath("schemas", schema_file).is_file()


@pytest.mark.parametrize("name", [MANIFEST, CHAIN_SUMMARY, HEARTBEAT, KPI])
def test_schema_header_and_required_fields(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == DRAFT_2020_12
    assert schema["additionalProperties"] is True
    assert set(schema["required"]) == REQUIRED[name]


def test_load_schema_returns_private_copy() -> None:
    load_schema(KPI)["required"].clear()
    assert "run_id" in load_schema(KPI)["required"]


def test_load_schema_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"no schema for evidence file 'engine\.log'"):
        load_schema("engine.log")


@pytest.mark.parametrize("name", [MANIFEST, CHAIN_SUMMARY, HEARTBEAT, KPI])
def test_factory_documents_are_valid(name: str) -> None:
    assert validation_errors(name, valid(name)) == []


def test_every_heartbeat_line_from_factory_is_valid() -> None:
    lines = make_heartbeats()
    assert [line["event"] for line in lines] == [
        "start",
        "beat",
        "beat",
        "beat",
        "beat",
        "beat",
        "beat",
        "stop",
    ]
    assert [validation_errors(HEARTBEAT, line) for line in lines] == [[]] * 8


@pytest.mark.parametrize("name", [MANIFEST, CHAIN_SUMMARY, HEARTBEAT, KPI])
def test_each_required_field_is_enforced(name: str) -> None:
    for field in sorted(REQUIRED[name]):
        document = valid(name)
        del document[field]
        assert validation_errors(name, document) == [f"{name}: (root): '{field}' is a required property"]


@pytest.mark.parametrize("name", [MANIFEST, CHAIN_SUMMARY, HEARTBEAT, KPI])
def test_extra_top_level_fields_are_allowed(name: str) -> None:
    document = valid(name)
    document["added_by_a_later_feature"] = {"anything": [1, 2]}
    assert validation_errors(name, document) == []


def test_error_message_names_the_json_path() -> None:
    kpi = make_kpi({"db_counts": {"db_inserts_ok": -1, "db_inserts_failed": 0}})
    assert validation_errors(KPI, kpi) == [
        "kpi.json: db_counts.db_inserts_ok: -1 is less than the minimum of 0"
    ]


def test_error_message_names_array_index_and_custom_location() -> None:
    summary = make_chain_summary(
        {"warnings": [{"level": "WARNING", "logger": "x", "message": "m", "created": 1.0}, {}]}
    )
    assert validation_errors(CHAIN_SUMMARY, summary)[0] == (
        "chain_summary.json: warnings[1]: 'created' is a required property"
    )
    line = make_heartbeats()[0]
    line["seq"] = -3
    assert validation_errors(HEARTBEAT, line, location="heartbeat.jsonl line 1") == [
        "heartbeat.jsonl line 1: seq: -3 is less than the minimum of 0"
    ]


@pytest.mark.parametrize(
    "run_id",
    [
        "smoke_20250101T000000Z_a1b2c3",
        "baseline_20251231T235959Z_000000",
        "longrun_20250615T120000Z_ffffff",
    ],
)
@pytest.mark.parametrize("name", [MANIFEST, CHAIN_SUMMARY, KPI])
def test_run_id_accepted(name: str, run_id: str) -> None:
    document = valid(name)
    document["run_id"] = run_id
    assert validation_errors(name, document) == []


@pytest.mark.parametrize(
    "run_id",
    [
        "canary_20250101T000000Z_a1b2c3",
        "smoke_20250101T000000_a1b2c3",
        "smoke_20250101T000000Z_A1B2C3",
        "smoke_20250101T000000Z_a1b2c",
        "smoke_2025010T000000Z_a1b2c3",
        "smoke_20250101T000000Z_a1b2c3_extra",
    ],
)
@pytest.mark.parametrize("name", [MANIFEST, CHAIN_SUMMARY, KPI])
def test_run_id_rejected(name: str, run_id: str) -> None:
    document = valid(name)
    document["run_id"] = run_id
    errors = validation_errors(name, document)
    assert len(errors) == 1
    assert errors[0].startswith(f"{name}: run_id: '{run_id}' does not match")


ACCEPTED_OVERRIDES: list[tuple[str, dict[str, Any]]] = [
    (
        MANIFEST,
        {"ended_at": None, "duration_minutes": None, "ticks": None, "git_sha": None, "git_dirty": None},
    ),
    (
        MANIFEST,
        {"ended_at": "2025-01-01T01:00:00Z", "duration_minutes": 60, "ticks": None, "status": "running"},
    ),
    (MANIFEST, {"mode": "live", "phase": "longrun", "status": "failed", "git_sha": "abc1234"}),
    (
        CHAIN_SUMMARY,
        {"expected_duration_seconds": None, "exit_code": 1, "net_pnl": {"krw": -5, "usd": -0.5}},
    ),
    (CHAIN_SUMMARY, {"expected_duration_seconds": 3600.0, "warnings": [], "warnings_count": 0}),
    (HEARTBEAT, {"last_loop_ts": None, "event": "stop", "watchdog": "CRITICAL"}),
    (KPI, {"loop_latency_ms": {"p50": None, "p95": None, "p99": None, "max": None}}),
    (KPI, {"market_errors": {}, "rejected_books": {}, "net_pnl_krw": -1234.5}),
]
"""Valid documents: a factory document with these overrides."""


@pytest.mark.parametrize(("name", "overrides"), ACCEPTED_OVERRIDES)
def test_nullable_and_enum_values_accepted(name: str, overrides: dict[str, Any]) -> None:
    assert validation_errors(name, {**valid(name), **overrides}) == []


TOP_LEVEL_REJECTED: list[tuple[str, str, object, str]] = [
    (MANIFEST, "schema_version", SCHEMA_VERSION + 1, f"{SCHEMA_VERSION} was expected"),
    (MANIFEST, "phase", "canary", "'canary' is not one of ['smoke', 'baseline', 'longrun']"),
    (MANIFEST, "mode", "sim", "'sim' is not one of ['paper', 'live']"),
    (MANIFEST, "status", "done", "'done' is not one of ['running', 'ended', 'failed']"),
    (MANIFEST, "started_at", "2025-01-01 00:00:00", "does not match"),
    (MANIFEST, "seed", None, "None is not of type 'integer'"),
    (MANIFEST, "config_hash", "AB" * 32, "does not match '^[0-9a-f]{64}$'"),
    (MANIFEST, "config_hash", "a" * 63, "does not match '^[0-9a-f]{64}$'"),
    (MANIFEST, "git_dirty", "no", "'no' is not of type 'boolean', 'null'"),
    (MANIFEST, "config", [], "[] is not of type 'object'"),
    (MANIFEST, "duration_minutes", 0, "0 is less than or equal to the minimum of 0"),
    (CHAIN_SUMMARY, "exit_code", 2, "2 is not one of [0, 1]"),
    (CHAIN_SUMMARY, "heartbeat_interval_seconds", 0, "0 is less than or equal to the minimum of 0"),
    (CHAIN_SUMMARY, "duration_seconds", -1.0, "-1.0 is less than the minimum of 0"),
    (CHAIN_SUMMARY, "closed_trades", 1.5, "1.5 is not of type 'integer'"),
    (CHAIN_SUMMARY, "stop_reason", "", "should be non-empty"),
    (HEARTBEAT, "event", "tick", "'tick' is not one of ['start', 'beat', 'stop']"),
    (HEARTBEAT, "watchdog", "ok", "'ok' is not one of ['OK', 'WARN', 'ERROR', 'CRITICAL']"),
    (HEARTBEAT, "seq", True, "True is not of type 'integer'"),
    (HEARTBEAT, "loop_count", -1, "-1 is less than the minimum of 0"),
    (KPI, "leg_unwinds", -2, "-2 is less than the minimum of 0"),
    (KPI, "net_pnl_usd", "1.0", "'1.0' is not of type 'number'"),
]
"""(document, field, bad value, what the schema says about it)."""


@pytest.mark.parametrize(("name", "field", "value", "problem"), TOP_LEVEL_REJECTED)
def test_top_level_field_rejected(name: str, field: str, value: object, problem: str) -> None:
    document = valid(name)
    document[field] = value
    errors = validation_errors(name, document)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{name}: {field}: ")
    assert problem in errors[0]


NESTED_REJECTED: list[tuple[str, dict[str, Any], str]] = [
    (
        MANIFEST,
        {"files": {KPI: {"sha256": "0" * 64, "bytes": -1}}},
        "manifest.json: files.kpi.json.bytes: -1 is",
    ),
    (MANIFEST, {"files": {KPI: {"bytes": 10}}}, "manifest.json: files.kpi.json: 'sha256' is a required"),
    (
        MANIFEST,
        {"versions": {"python": 3.11}},
        "manifest.json: versions.python: 3.11 is not of type 'string'",
    ),
    (KPI, {"market_errors": {"upbit": -1}}, "kpi.json: market_errors.upbit: -1 is less than the minimum"),
    (
        KPI,
        {"rejected_books": {"stale": "2"}},
        "kpi.json: rejected_books.stale: '2' is not of type 'integer'",
    ),
    (
        KPI,
        {"loop_latency_ms": {"p50": 1, "p95": 2, "p99": 3}},
        "kpi.json: loop_latency_ms: 'max' is a required",
    ),
    (
        CHAIN_SUMMARY,
        {"net_pnl": {"krw": 1.0}},
        "chain_summary.json: net_pnl: 'usd' is a required property",
    ),
]
"""(document, overrides, the schema's message): a bad value below the top level."""


@pytest.mark.parametrize(("name", "overrides", "expected"), NESTED_REJECTED)
def test_nested_fields_rejected(name: str, overrides: dict[str, Any], expected: str) -> None:
    errors = validation_errors(name, {**valid(name), **overrides})
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected)


@pytest.mark.parametrize(
    ("section", "field", "value", "expected"),
    [
        (
            "kpi",
            "db_inserts_failed",
            -1,
            "heartbeat.jsonl: kpi.db_inserts_failed: -1 is less than the minimum of 0",
        ),
        ("kpi", "net_pnl_krw", None, "heartbeat.jsonl: kpi.net_pnl_krw: None is not of type 'number'"),
        ("kpi", "open_positions", REMOVE, "heartbeat.jsonl: kpi: 'open_positions' is a required property"),
        (
            "guards",
            "consecutive_losses",
            1.5,
            "heartbeat.jsonl: guards.consecutive_losses: 1.5 is not of type",
        ),
        ("guards", "peak_pnl", REMOVE, "heartbeat.jsonl: guards: 'peak_pnl' is a required property"),
    ],
)
def test_heartbeat_nested_fields(section: str, field: str, value: object, expected: str) -> None:
    line = make_heartbeats()[2]
    if value is REMOVE:
        del line[section][field]
    else:
        line[section][field] = value
    errors = validation_errors(HEARTBEAT, line)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected)


def _invariants(**changes: dict[str, Any]) -> dict[str, Any]:
    summary = make_chain_summary()
    for key, fields in changes.items():
        summary["invariants"][key].update(fields)
    return summary


def test_invariant_verdict_shapes() -> None:
    assert validation_errors(CHAIN_SUMMARY, _invariants(db={"passed": False, "observed": 3})) == []
    assert validation_errors(CHAIN_SUMMARY, _invariants(completeness={"observed": "3/4 files ok"})) == []
    applicable_without_verdict = validation_errors(CHAIN_SUMMARY, _invariants(db={"passed": None}))
    assert applicable_without_verdict == [
        "chain_summary.json: invariants.db.passed: None is not of type 'boolean'"
    ]
    skipped_with_verdict = validation_errors(CHAIN_SUMMARY, _invariants(wallclock={"passed": True}))
    assert skipped_with_verdict == [
        "chain_summary.json: invariants.wallclock.passed: True is not of type 'null'"
    ]


def test_invariant_name_must_match_its_key() -> None:
    errors = validation_errors(CHAIN_SUMMARY, _invariants(db={"name": "wallclock"}))
    assert errors == ["chain_summary.json: invariants.db.name: 'db' was expected"]


def test_invariant_measure_types() -> None:
    errors = validation_errors(CHAIN_SUMMARY, _invariants(heartbeat_density={"observed": [1, 2]}))
    assert errors == [
        "chain_summary.json: invariants.heartbeat_density.observed: "
        "[1, 2] is not of type 'number', 'string', 'null'"
    ]


def test_all_four_invariants_required() -> None:
    summary = make_chain_summary()
    del summary["invariants"]["heartbeat_density"]
    assert validation_errors(CHAIN_SUMMARY, summary) == [
        "chain_summary.json: invariants: 'heartbeat_density' is a required property"
    ]


def test_long_instances_are_shortened_in_messages() -> None:
    errors = validation_errors(MANIFEST, make_manifest({"versions": "x" * 1000}))
    assert len(errors) == 1
    assert errors[0].startswith("manifest.json: versions: 'xxxx")
    assert errors[0].endswith("...")
    assert len(errors[0]) == len("manifest.json: versions: ") + 240
