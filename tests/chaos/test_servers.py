"""The chaos command's own servers: an owner killed with SIGKILL leaves none of them running,
not even a server or backend it had frozen."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from arbitrage.service_registry import ServerRegistry
from tests.support.engine_process import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEADLINE_SEC = 30.0
OWNER = """
import json, sys
from pathlib import Path
import psycopg
from gates.chaos.postgres import ControlledPostgres
from gates.chaos.redis import ControlledRedis
pg = ControlledPostgres.create()
client = psycopg.connect(pg.admin_dsn, application_name="frozen-client")
[backend] = pg.freeze_backends("frozen-client", "postgres")
redis = ControlledRedis.create(Path(sys.argv[1]))
redis.freeze()
pids = {"postgres": pg.pid, "frozen backend": backend, "redis": redis.pid}
print(json.dumps({"pids": pids, "root": str(pg.root)}), flush=True)
sys.stdin.read()
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_servers_of_a_killed_owner_are_stopped_by_the_next_sweep(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "redis")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert owner.stdout is not None
    started = json.loads(owner.stdout.readline())
    pids: dict[str, int] = started["pids"]
    request.addfinalizer(lambda: shutil.rmtree(started["root"], ignore_errors=True))
    assert all(not _gone(pid) for pid in pids.values()), pids

    registry = ServerRegistry()
    with registry.locked():  # every embedded server's start and stop sweeps too: none may come first
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=DEADLINE_SEC)
        stopped = {entry.kind for entry in registry.sweep()}

    assert {"controlled postgres", "controlled redis"} <= stopped
    wait_for(lambda: all(_gone(pid) for pid in pids.values()), DEADLINE_SEC, f"the servers {pids} to go")
