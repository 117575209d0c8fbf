"""Generate the JSON Schemas in ``evidence/schemas`` from the document models.

``python -m evidence.schema_export`` rewrites them; ``--check`` only reports which differ (exit 1),
which is what a unit test runs so a model change cannot ship with a stale schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from evidence.conditional import MODELS as CONDITIONAL_MODELS
from evidence.documents import DOCUMENTS, schema_file_name

DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR: Final = Path(__file__).resolve().parent / "schemas"
MODELS: Final[dict[str, type[BaseModel]]] = {**DOCUMENTS, **CONDITIONAL_MODELS}
"""Every evidence file with a schema: the minimum set and the conditional documents."""


def _nullable(node: Any) -> Any:
    """Write ``anyOf: [{type: T, ...}, {type: null}]`` as ``{type: [T, null], ...}``: the same
    rule, stated the way a reader (and a validator's message) expects."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and all(isinstance(o, dict) and set(o) == {"type"} for o in options):
        merged = {key: value for key, value in node.items() if key != "anyOf"}
        return {**merged, "type": [option["type"] for option in options]}
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(option for option in options if option != {"type": "null"})
        if isinstance(other.get("type"), str) and "$ref" not in other:
            merged = {key: value for key, value in node.items() if key != "anyOf"}
            return {**other, **merged, "type": [other["type"], "null"]}
    return node


def generate(file_name: str) -> dict[str, Any]:
    """The schema of one evidence file, as generated from its model."""
    model = MODELS[file_name]
    body = _nullable(model.model_json_schema(mode="validation"))
    title = f"{file_name} line" if file_name.endswith(".jsonl") else file_name
    return {
        "$schema": DRAFT_2020_12,
        "$id": f"urn:arbitrage-harness:evidence:{schema_file_name(file_name)}",
        **body,
        "title": title,
    }


def render(file_name: str) -> str:
    """The schema file's exact text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(generate(file_name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Schema files that differ from what the models generate (or are missing)."""
    found = []
    for file_name in MODELS:
        path = directory / schema_file_name(file_name)
        if not path.is_file() or path.read_text(encoding="utf-8") != render(file_name):
            found.append(path.name)
    return found


def main(argv: list[str] | None = None) -> int:
    """Write the schemas, or with ``--check`` report the stale ones."""
    parser = argparse.ArgumentParser(prog="python -m evidence.schema_export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale schema files, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        differ = stale()
        for name in differ:
            print(f"{SCHEMA_DIR / name}: differs from the model; run python -m evidence.schema_export")
        return 1 if differ else 0
    for file_name in MODELS:
        (SCHEMA_DIR / schema_file_name(file_name)).write_text(render(file_name), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
