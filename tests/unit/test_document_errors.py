"""The engine's check of its own documents (the models) and the readers' (the shipped schemas) agree.

The close-out checks what it wrote with `document_errors`, `verify` and the harness with
`validation_errors`. Both must accept the same documents and reject the same crafted bad ones at
the same place (or, for a rule over a whole object, at that object), or a run could seal evidence
its own verifier refuses.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from evidence.documents import Manifest, parse_document
from evidence.names import CHAIN_SUMMARY, HEARTBEAT, KPI, MANIFEST
from evidence.schema import document_errors, validation_errors
from tests.evidence_factory import make_chain_summary, make_heartbeats
from tests.unit.test_schemas import (
    ACCEPTED_OVERRIDES,
    NESTED_REJECTED,
    REQUIRED,
    TOP_LEVEL_REJECTED,
    valid,
)

_PATH = re.compile(r"^[^:]+: ([^:]+): ")


def _bad_documents() -> list[tuple[str, str, dict[str, Any]]]:
    """(label, document name, document): one fault each, from the schema tests' own cases."""
    cases: list[tuple[str, str, dict[str, Any]]] = []
    for name, fields in sorted(REQUIRED.items()):
        for field in sorted(fields):
            document = valid(name)
            del document[field]
            cases.append((f"{name} without {field}", name, document))
    for name, field, value, _ in TOP_LEVEL_REJECTED:
        cases.append((f"{name} {field}={value!r}", name, {**valid(name), field: value}))
    for name, overrides, _ in NESTED_REJECTED:
        cases.append((f"{name} {overrides}", name, {**valid(name), **overrides}))
    line = make_heartbeats()[2]
    line["guards"]["consecutive_losses"] = 1.5
    cases.append(("heartbeat guard count 1.5", HEARTBEAT, line))
    summary = make_chain_summary()
    summary["invariants"]["db"]["name"] = "wallclock"
    cases.append(("invariant named after another key", CHAIN_SUMMARY, summary))
    summary = make_chain_summary()
    summary["invariants"]["wallclock"]["passed"] = True
    cases.append(("skipped invariant with a verdict", CHAIN_SUMMARY, summary))
    return cases


BAD = _bad_documents()


def _paths(errors: list[str]) -> set[str]:
    found = set()
    for error in errors:
        match = _PATH.match(error)
        assert match is not None, error
        found.add(match.group(1))
    return found


@pytest.mark.parametrize(("name", "document"), [(n, d) for _, n, d in BAD], ids=[c[0] for c in BAD])
def test_both_reject_a_bad_document_at_the_same_path(name: str, document: dict[str, Any]) -> None:
    by_schema = validation_errors(name, document)
    by_model = document_errors(name, document)
    assert by_schema, "the crafted document must be bad by the shipped schema"
    assert by_model, f"the model accepted what the schema refused: {by_schema}"
    model_paths = _paths(by_model)
    for path in _paths(by_schema):
        assert any(_encloses(found, path) for found in model_paths), (by_model, by_schema)


def _encloses(outer: str, inner: str) -> bool:
    """The same JSON path, or one of its parents (a model-level rule reports at the object)."""
    return inner == outer or inner.startswith((f"{outer}.", f"{outer}["))


@pytest.mark.parametrize(
    ("name", "overrides"),
    [*((name, {}) for name in (MANIFEST, CHAIN_SUMMARY, HEARTBEAT, KPI)), *ACCEPTED_OVERRIDES],
)
def test_both_accept_a_valid_document(name: str, overrides: dict[str, Any]) -> None:
    document = {**valid(name), **overrides}
    assert validation_errors(name, document) == []
    assert document_errors(name, document) == []


def test_every_heartbeat_line_passes_both() -> None:
    lines = make_heartbeats()
    assert [document_errors(HEARTBEAT, line) for line in lines] == [[]] * len(lines)


def test_an_old_manifest_the_readers_accept_is_not_accepted_as_written() -> None:
    manifest = valid(MANIFEST)
    del manifest["heartbeat_interval_seconds"]
    manifest["config"]["heartbeat"] = {"interval_sec": 2.0}
    assert parse_document(Manifest, manifest) is not None, "readers fill the field in from config"
    assert document_errors(MANIFEST, manifest) == [
        "manifest.json: (root): 'heartbeat_interval_seconds' is a required property"
    ]


def test_messages_name_the_location_and_the_path() -> None:
    kpi = {**valid(KPI), "db_counts": {"db_inserts_ok": -1, "db_inserts_failed": 0}}
    assert document_errors(KPI, kpi, location="kpi.json (written)") == [
        "kpi.json (written): db_counts.db_inserts_ok: Input should be greater than or equal to 0"
    ]


def test_an_unknown_file_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"no schema for evidence file 'engine\.log'"):
        document_errors("engine.log", {})
