"""JSON Schema access for the minimum evidence set, and the same contract checked by its models.

The schemas ship inside the package (``evidence/schemas``), generated from the document models
(:mod:`evidence.schema_export`), so ``verify``, the doctor and the harness validate against the
same contract, whatever the working directory. The engine checks its own writes with the models
the schemas come from (:func:`document_errors`): the same rule, without loading a JSON Schema
validator into every run. jsonschema is imported only when a schema is first used.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from evidence.conditional import MODELS as CONDITIONAL_MODELS
from evidence.documents import DOCUMENTS, WRITTEN, schema_file_name

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

SCHEMA_FILES: Final[Mapping[str, str]] = {
    name: schema_file_name(name) for name in (*DOCUMENTS, *CONDITIONAL_MODELS)
}
"""Evidence file name -> schema resource (generated from :data:`evidence.documents.DOCUMENTS` and
the conditional documents' models); for ``heartbeat.jsonl`` the schema covers one line."""

_MAX_MESSAGE_CHARS: Final = 240


class DocumentCheck(Protocol):
    """How a document is checked against its contract: :func:`validation_errors` (the shipped
    schema) or :func:`document_errors` (the model it is generated from)."""

    def __call__(self, file_name: str, document: object, *, location: str | None = None) -> list[str]: ...


def _schema_file(file_name: str) -> str:
    try:
        return SCHEMA_FILES[file_name]
    except KeyError:
        known = ", ".join(sorted(SCHEMA_FILES))
        raise ValueError(f"no schema for evidence file {file_name!r}; known: {known}") from None


@functools.cache
def _load_raw(file_name: str) -> dict[str, Any]:
    resource = resources.files("evidence").joinpath("schemas", _schema_file(file_name))
    loaded = json.loads(resource.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"schema for {file_name} is not a JSON object")
    return loaded


@functools.cache
def _validator(file_name: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_load_raw(file_name))


def load_schema(file_name: str) -> dict[str, Any]:
    """Return the schema for an evidence file (e.g. ``"kpi.json"``); callers get a private copy."""
    return copy.deepcopy(_load_raw(file_name))


def _json_path(parts: Iterable[str | int]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def _shorten(message: str) -> str:
    if len(message) <= _MAX_MESSAGE_CHARS:
        return message
    return message[: _MAX_MESSAGE_CHARS - 3] + "..."


def validation_errors(file_name: str, document: object, *, location: str | None = None) -> list[str]:
    """Validate ``document`` against the schema of ``file_name`` and describe every violation.

    Each message reads ``"<location>: <json path>: <problem>"``, e.g.
    ``"kpi.json: db_counts.db_inserts_ok: -1 is less than the minimum of 0"``. ``location``
    defaults to ``file_name``; pass e.g. ``"heartbeat.jsonl line 7"`` for a JSONL record.
    An empty list means the document is valid.
    """
    where = location or file_name
    errors = sorted(
        _validator(file_name).iter_errors(document),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    return [f"{where}: {_json_path(e.absolute_path)}: {_shorten(e.message)}" for e in errors]


def _model(file_name: str) -> type[BaseModel]:
    _schema_file(file_name)
    return DOCUMENTS.get(file_name) or CONDITIONAL_MODELS[file_name]


_ABSENT: Final = object()


def _child(node: object, part: int | str) -> object:
    """`node[part]` when the document has it, else :data:`_ABSENT`."""
    if isinstance(node, dict):
        return node.get(part, _ABSENT)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


def _document_path(document: object, loc: Iterable[int | str]) -> str:
    """The JSON path of a model error's location: the keys and indexes found in the document,
    without the union members' tags pydantic adds to it."""
    parts: list[str | int] = []
    node = document
    for part in loc:
        child = _child(node, part)
        if child is not _ABSENT:
            node = child
            parts.append(part)
    return _json_path(parts)


def _model_problem(document: object, error: ErrorDetails) -> tuple[str, str]:
    """(json path, problem) of one model error, worded like the schema's for a missing key."""
    loc = error["loc"]
    if error["type"] == "missing" and loc:
        return _document_path(document, loc[:-1]), f"{loc[-1]!r} is a required property"
    return _document_path(document, loc), error["msg"]


def document_errors(file_name: str, document: object, *, location: str | None = None) -> list[str]:
    """:func:`validation_errors`' rule checked by the model the schema is generated from.

    What the engine runs on its own documents before sealing them: strict validation (no
    coercion, as JSON Schema does none) and without the readers' allowance for old manifests, so
    a document is accepted exactly when its schema accepts it. Messages read
    ``"<location>: <json path>: <problem>"``, one per path (a union's alternatives joined by
    "or"); an empty list means the document is valid.
    """
    try:
        _model(file_name).model_validate(document, strict=True, context=WRITTEN)
    except ValidationError as exc:
        by_path: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            path, problem = _model_problem(document, error)
            if problem not in by_path.setdefault(path, []):
                by_path[path].append(problem)
        where = location or file_name
        return [f"{where}: {path}: {_shorten(' or '.join(p))}" for path, p in sorted(by_path.items())]
    return []


def check_schemas() -> list[str]:
    """Check that every shipped schema loads and is itself a valid draft 2020-12 schema.

    Used by the doctor gate; an empty list means the contract is usable.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    problems: list[str] = []
    for file_name, schema_file in SCHEMA_FILES.items():
        try:
            schema = _load_raw(file_name)
        except (OSError, ValueError) as exc:
            problems.append(f"{schema_file}: cannot load: {exc}")
            continue
        if schema.get("$schema") != Draft202012Validator.META_SCHEMA["$id"]:
            problems.append(f"{schema_file}: $schema is {schema.get('$schema')!r}, expected draft 2020-12")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = _json_path(exc.absolute_path)
            problems.append(f"{schema_file}: invalid schema at {where}: {_shorten(exc.message)}")
    return problems
