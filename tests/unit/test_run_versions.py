"""The manifest's `versions` are the installed distributions' versions, however they are found."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import ccxt
import psycopg
import pydantic
import redis

from arbitrage import __version__
from arbitrage.run_evidence import versions


def test_versions_of_loaded_modules_are_the_installed_distributions() -> None:
    loaded = {m.__name__ for m in (ccxt, psycopg, pydantic, redis)}
    found = versions()
    assert found["arbitrage-harness"] == importlib.metadata.version("arbitrage-harness") == __version__
    for dist in (*loaded, "jsonschema"):
        assert found[dist] == importlib.metadata.version(dist), dist


def test_versions_in_a_process_that_imported_none_of_them() -> None:
    probe = "import json; from arbitrage.run_evidence import versions; print(json.dumps(versions()))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == versions()
