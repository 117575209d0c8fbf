"""`arbitrage --help` and the command line's parsing load no database or cache client.

Each check runs in a fresh interpreter, because this process has long since imported both.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("psycopg", "redis", "ccxt", "rich")

PROBES = {
    "import arbitrage.cli": "import arbitrage.cli",
    "build the parser": "import arbitrage.cli; arbitrage.cli.build_parser()",
    "parse a run": "import arbitrage.cli; arbitrage.cli.build_parser().parse_args(['run', '--ticks', '1'])",
    "import arbitrage.config": "import arbitrage.config",
}


def loaded_packages(code: str) -> list[str]:
    """The top-level packages among HEAVY that `code` leaves in sys.modules of a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    return [name for name in HEAVY if name in loaded]


@pytest.mark.parametrize("what", sorted(PROBES))
def test_parsing_the_command_line_loads_no_database_or_cache_client(what: str) -> None:
    assert loaded_packages(PROBES[what]) == [], f"{what} loaded these before any command needed them"


def test_the_probe_sees_a_package_that_is_loaded() -> None:
    assert loaded_packages("import arbitrage.ledger") == ["psycopg"]
