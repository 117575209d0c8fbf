"""The rooms' import rules, read from the source with `ast` (every import, also those inside functions).

- config modules (`arbitrage/config/`) import no runtime module: nothing of `arbitrage` outside the
  config package, and no database, cache, exchange, metrics, process or plotting library;
- `arbitrage` imports neither `harness` nor `gates`, except its command line (`arbitrage/cli.py`),
  the composition point that adds their commands;
- the exchange simulator (`harness/exchange_sim/`) is test infrastructure: no module of `arbitrage`
  but the composition point names it, and that one only to add `arbitrage sim`;
- `evidence` imports none of `arbitrage`, `harness` and `gates`;
- the four packages import each other without a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("arbitrage", "evidence", "harness", "gates")
RUNTIME_LIBRARIES = frozenset(
    {"psycopg", "psycopg_binary", "redis", "ccxt", "prometheus_client", "psutil", "matplotlib", "aiohttp"}
)
COMPOSITION_POINT = "arbitrage/cli.py"
SIMULATOR = "harness.exchange_sim"
"""The one `arbitrage` module allowed to import `harness` and `gates`: it registers their commands."""
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()
"""(module file, imported module) pairs that break a rule today and are left for later; none."""


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `path`, and every `importlib.import_module("...")`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}:{node.lineno}: relative import; this project uses absolute ones")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(
    package: str, forbidden: tuple[str, ...], allowed_files: frozenset[str] = frozenset()
) -> list[str]:
    """`file:line module` for each import in `package` of a module under one of `forbidden`."""
    found = []
    for path in sources(package):
        name = path.relative_to(ROOT).as_posix()
        if name in allowed_files:
            continue
        for line, module in imports_of(path):
            hit = any(module == top or module.startswith(f"{top}.") for top in forbidden)
            if hit and (name, module) not in KNOWN_EXCEPTIONS:
                found.append(f"{name}:{line} {module}")
    return found


def test_config_modules_import_no_runtime_module() -> None:
    config = ROOT / "arbitrage" / "config"
    found = []
    for path in sorted(config.rglob("*.py")):
        for line, module in imports_of(path):
            top = module.split(".")[0]
            runtime_arbitrage = top == "arbitrage" and not (
                module == "arbitrage.config" or module.startswith("arbitrage.config.")
            )
            if runtime_arbitrage or top in RUNTIME_LIBRARIES or top in PACKAGES[1:]:
                found.append(f"{path.relative_to(ROOT)}:{line} {module}")
    assert found == []


def test_arbitrage_imports_neither_harness_nor_gates_outside_the_composition_point() -> None:
    assert violations("arbitrage", ("harness", "gates"), frozenset({COMPOSITION_POINT})) == []


def test_the_composition_point_is_where_gates_come_in() -> None:
    """Guards the exception itself: if the CLI stopped adding these commands, the exception should go."""
    modules = {module for _, module in imports_of(ROOT / COMPOSITION_POINT)}
    cli_text = (ROOT / COMPOSITION_POINT).read_text(encoding="utf-8")
    assert "gates.verify_command" in cli_text or any(m.startswith("gates.") for m in modules)


def test_no_engine_module_but_the_composition_point_imports_the_simulator() -> None:
    assert violations("arbitrage", (SIMULATOR,), frozenset({COMPOSITION_POINT})) == []


def test_the_engine_names_the_simulator_only_to_add_its_command() -> None:
    """Also catches a module name in a string (an `import_module` over a list, as the CLI's own)."""
    named = [
        path.relative_to(ROOT).as_posix()
        for path in sources("arbitrage")
        if SIMULATOR in path.read_text(encoding="utf-8")
    ]
    assert named == [COMPOSITION_POINT]
    cli_text = (ROOT / COMPOSITION_POINT).read_text(encoding="utf-8")
    assert cli_text.count(SIMULATOR) == 1 and f'"{SIMULATOR}.command"' in cli_text


def test_evidence_imports_none_of_the_other_packages() -> None:
    assert violations("evidence", ("arbitrage", "harness", "gates")) == []


def package_graph() -> dict[str, set[str]]:
    """Which of the four packages each imports (any module of it, anywhere in the package)."""
    graph: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for package in PACKAGES:
        for path in sources(package):
            for _, module in imports_of(path):
                top = module.split(".")[0]
                if top in PACKAGES and top != package:
                    graph[package].add(top)
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_cycle_between_the_packages() -> None:
    assert cycle_in(package_graph()) is None


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": set(), "c": {"b"}}, None),
    ],
)
def test_the_cycle_finder_sees_a_cycle(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert cycle_in(graph) == expected


def test_the_import_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os\n"
        "def f():\n"
        "    from psycopg import sql\n"
        "    import importlib\n"
        "    importlib.import_module('gates.x')\n"
    )
    assert list(imports_of(module)) == [(1, "os"), (3, "psycopg"), (4, "importlib"), (5, "gates.x")]
