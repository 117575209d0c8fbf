"""An addendum carries its own seal: a changed addendum, or one sealed against another manifest, shows."""

from __future__ import annotations

import json
from pathlib import Path

from evidence import names
from evidence.addendum import addendum_problems, write_addendum


def sealed_dir(tmp_path: Path) -> Path:
    (tmp_path / names.MANIFEST).write_text('{"status": "ended"}\n')
    write_addendum(tmp_path, names.RECONCILIATION, names.RECONCILIATION_SEAL, {"ok": True, "problems": []})
    return tmp_path


def test_a_fresh_addendum_matches_its_seal(tmp_path: Path) -> None:
    directory = sealed_dir(tmp_path)
    assert addendum_problems(directory, names.RECONCILIATION, names.RECONCILIATION_SEAL) == []
    seal = json.loads((directory / names.RECONCILIATION_SEAL).read_text())
    assert seal["file"] == names.RECONCILIATION and len(seal["manifest_sha256"]) == 64


def test_an_edited_addendum_is_reported(tmp_path: Path) -> None:
    directory = sealed_dir(tmp_path)
    (directory / names.RECONCILIATION).write_text('{"ok": true, "problems": ["hidden"]}\n')
    found = addendum_problems(directory, names.RECONCILIATION, names.RECONCILIATION_SEAL)
    assert found == [f"{names.RECONCILIATION}: sha256 mismatch with {names.RECONCILIATION_SEAL}"]


def test_an_addendum_moved_to_another_run_is_reported(tmp_path: Path) -> None:
    directory = sealed_dir(tmp_path)
    (directory / names.MANIFEST).write_text('{"status": "ended", "run_id": "other"}\n')
    found = addendum_problems(directory, names.RECONCILIATION, names.RECONCILIATION_SEAL)
    assert found == [f"{names.RECONCILIATION_SEAL}: sealed against another manifest"]


def test_no_addendum_is_no_problem(tmp_path: Path) -> None:
    (tmp_path / names.MANIFEST).write_text("{}\n")
    assert addendum_problems(tmp_path, names.RECONCILIATION, names.RECONCILIATION_SEAL) == []
