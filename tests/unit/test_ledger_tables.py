"""The ledger's table names are spelled once (`evidence.ledger_tables`): no SQL in the packages names
a table by a literal, so renaming one changes every statement that reads or writes it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from evidence import ledger_tables

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("arbitrage", "evidence", "gates", "harness")
HOME = ROOT / "evidence" / "ledger_tables.py"
NAMES = ("runs", "trade_legs", "event_log", "system_state", "alert_deliveries", "live_arms", "schema_version")
SQL_TABLE = re.compile(rf"\b(?:FROM|INTO|UPDATE|JOIN|TABLE|ON)\s+({'|'.join(NAMES)})\b")


def literal_table_names(path: Path, root: Path = ROOT) -> list[str]:
    """`file:line table` for each string literal in `path` that names a table after an SQL keyword."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [f"{path.relative_to(root)}:{node.lineno} {m}" for m in SQL_TABLE.findall(node.value)]
    return found


def test_no_sql_in_the_packages_names_a_table_by_a_literal() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != HOME:
                found += literal_table_names(path)
    assert found == []


def test_the_scan_sees_a_literal_and_lets_a_constant_pass(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        'RUNS = "runs"\n'
        'A = "SELECT run_id FROM runs WHERE x"\n'
        'B = f"INSERT INTO {RUNS} (run_id) VALUES (%s)"\n'
        'C = "UPDATE trade_legs SET x = 1"\n'
    )
    assert literal_table_names(module, tmp_path) == ["m.py:2 runs", "m.py:4 trade_legs"]


def test_the_names_module_spells_each_table_the_scan_knows() -> None:
    spelled = {
        value for name, value in vars(ledger_tables).items() if name.isupper() and isinstance(value, str)
    }
    assert spelled == set(NAMES)
