"""Addenda: documents written into a sealed evidence directory after the run, each with its own seal.

The manifest's seal covers what the engine wrote and is never rewritten. A later document (the
reconciliation report) is sealed beside it: `<name>` and a seal file recording its digest and the
digest of the manifest it was added to, so a changed addendum, or one moved to another run, shows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evidence.names import MANIFEST
from evidence.writer import atomic_write_json, file_digest


def write_addendum(evidence_dir: Path, name: str, seal_name: str, document: Any) -> Path:
    """Write `document` as `name` and its seal as `seal_name`; returns the document's path."""
    path = Path(evidence_dir) / name
    digest = atomic_write_json(path, document)
    manifest = file_digest(Path(evidence_dir) / MANIFEST)
    atomic_write_json(
        Path(evidence_dir) / seal_name,
        {
            "file": name,
            **digest.to_json(),
            "manifest_sha256": manifest.sha256,
            "sealed_at": datetime.now(UTC).isoformat(),
        },
    )
    return path


def addendum_problems(evidence_dir: Path, name: str, seal_name: str) -> list[str]:
    """Why the addendum `name` does not match its seal (empty when it does, or when there is none)."""
    directory = Path(evidence_dir)
    if not (directory / name).exists() and not (directory / seal_name).exists():
        return []
    try:
        seal = json.loads((directory / seal_name).read_text(encoding="utf-8"))
        actual = file_digest(directory / name)
        manifest = file_digest(directory / MANIFEST)
    except (OSError, ValueError) as exc:
        return [f"{name}: addendum unreadable: {exc}"]
    problems = []
    if not isinstance(seal, dict) or seal.get("file") != name:
        return [f"{seal_name}: not a seal of {name}"]
    if {k: seal.get(k) for k in ("sha256", "bytes")} != actual.to_json():
        problems.append(f"{name}: sha256 mismatch with {seal_name}")
    if seal.get("manifest_sha256") != manifest.sha256:
        problems.append(f"{seal_name}: sealed against another manifest")
    return problems
