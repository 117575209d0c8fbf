"""No embedded server outlives its owners: SIGKILLed engines and SIGTERMed test sessions.

Owners are real child processes, killed with real signals; the servers are real PostgreSQL and
Redis processes, looked up with psutil before and after.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from arbitrage.service_registry import ProcessRef
from tests.support.engine_process import wait_for

pytestmark = pytest.mark.integration

DEADLINE_SEC = 60.0

OWNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from arbitrage.services import EmbeddedServices

    services = EmbeddedServices(Path(sys.argv[1]))
    services.resolve(None, None)
    if sys.argv[2] == "hold":
        print("ready", flush=True)
        sys.stdin.read()
    services.stop()
    print("done", flush=True)
    """
)


def _spawn_owner(data_dir: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", OWNER, str(data_dir), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_line(process: subprocess.Popen[str], expected: str) -> None:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + DEADLINE_SEC
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = process.stdout.readline()
                if line.strip() == expected:
                    return
                if line == "":
                    break
    process.kill()
    _, stderr = process.communicate(timeout=10)
    pytest.fail(f"owner never printed {expected!r} (exit {process.returncode}); stderr:\n{stderr[-2000:]}")


def _server_processes(data_dir: Path) -> list[ProcessRef]:
    """The postmaster and its children, and the redis-server, serving `data_dir` right now."""
    found: list[ProcessRef] = []
    for pid_file in (data_dir / "postgres" / "postmaster.pid", data_dir / "redis" / "redis.pid"):
        pid = int(pid_file.read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        for member in (process, *process.children(recursive=True)):
            ref = ProcessRef.of(member.pid)
            if ref is not None:
                found.append(ref)
    return found


def _mentioning(data_dir: Path) -> list[str]:
    """Running processes whose command line names `data_dir` (a server left behind would)."""
    hits = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if str(data_dir) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            hits.append(f"{process.pid}: {cmdline}")
    return hits


def _sigkill(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate(timeout=10)


def _run_next_owner(data_dir: Path) -> None:
    process = _spawn_owner(data_dir, "once")
    stdout, stderr = process.communicate(timeout=DEADLINE_SEC)
    assert process.returncode == 0, f"next owner exit {process.returncode}; stderr:\n{stderr[-2000:]}"
    assert stdout.strip() == "done"


@pytest.fixture
def data_dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two service data dirs; any server still running in them afterwards is killed."""
    dirs = (tmp_path / "first", tmp_path / "second")
    yield dirs
    for process in psutil.process_iter(["cmdline"]):
        if any(str(d) in " ".join(process.info["cmdline"] or ()) for d in dirs):
            process.kill()


def _remove_tree(path: Path) -> None:
    """Delete `path` whole. Another worker's command may be sweeping the orphaned servers meanwhile,
    and a server that is stopping removes (postmaster.pid) and writes files of its own: what
    vanished is skipped, and the removal goes on until nothing is left."""

    def removed() -> bool:
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()

    wait_for(removed, 30, f"{path} removed")


def test_sigkilled_engine_servers_stop_when_the_next_command_on_another_dir_ends(
    data_dirs: tuple[Path, Path],
) -> None:
    killed_dir, next_dir = data_dirs
    owner = _spawn_owner(killed_dir, "hold")
    _wait_line(owner, "ready")
    servers = _server_processes(killed_dir)
    _sigkill(owner)
    assert all(server.alive() for server in servers), "the servers should outlive a SIGKILLed owner"
    _remove_tree(killed_dir)  # as pytest does with old basetemps: nothing there to find them by

    _run_next_owner(next_dir)

    assert [s.pid for s in servers if s.alive()] == []
    assert _mentioning(killed_dir) == [] and _mentioning(next_dir) == []


def test_sigkilled_engine_servers_are_stopped_by_the_next_owner_of_the_same_dir(
    data_dirs: tuple[Path, Path],
) -> None:
    data_dir, _ = data_dirs
    owner = _spawn_owner(data_dir, "hold")
    _wait_line(owner, "ready")
    servers = _server_processes(data_dir)
    _sigkill(owner)

    _run_next_owner(data_dir)

    assert [s.pid for s in servers if s.alive()] == []
    assert _mentioning(data_dir) == []


def test_the_last_live_owner_stops_a_server_shared_with_a_sigkilled_one(data_dirs: tuple[Path, Path]) -> None:
    from arbitrage.services import EmbeddedServices

    data_dir, _ = data_dirs
    owner = _spawn_owner(data_dir, "hold")
    _wait_line(owner, "ready")
    services = EmbeddedServices(data_dir)
    services.resolve(None, None)
    servers = _server_processes(data_dir)
    _sigkill(owner)
    handles = data_dir / "postgres" / ".handle_pids.json"
    assert str(owner.pid) in handles.read_text(), "pgserver should still list the killed owner"

    services.stop()

    assert [s.pid for s in servers if s.alive()] == []
    assert _mentioning(data_dir) == []


SESSION_TEST = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    import psycopg
    import redis

    def test_holds_servers(postgres_server, redis_url):
        with psycopg.connect(postgres_server) as conn:
            data_dir = conn.execute("SHOW data_directory").fetchone()[0]
        postmaster = (Path(data_dir) / "postmaster.pid").read_text().split()[0]
        client = redis.Redis.from_url(redis_url)
        redis_pid = client.info("server")["process_id"]
        client.close()
        Path(os.environ["ARB_TEST_READY"]).write_text(f"{postmaster} {redis_pid}")
        time.sleep(120)
    """
)


def test_a_sigterm_to_a_test_session_tears_its_embedded_servers_down(tmp_path: Path) -> None:
    (tmp_path / "test_hold.py").write_text(SESSION_TEST)
    ready = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_DSN", "REDIS_URL")}
    env["ARB_TEST_READY"] = str(ready)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'bt'}",
               "-p", "no:xdist", "-q", "test_hold.py"]  # fmt: skip
    session = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    with contextlib.suppress(AssertionError):  # reported below, with the inner session's output
        wait_for(
            lambda: (ready.exists() and ready.read_text()) or session.poll() is not None,
            DEADLINE_SEC, "the inner session to hold its servers or exit",
        )  # fmt: skip
    if not ready.exists():
        session.kill()
        pytest.fail(f"inner session never held its servers:\n{session.communicate(timeout=10)[0][-3000:]}")
    servers = [ProcessRef.of(int(pid)) for pid in ready.read_text().split()]
    tracked = [ref for ref in servers if ref is not None]
    assert len(tracked) == 2, f"expected a running postmaster and redis-server, found {tracked}"

    session.send_signal(signal.SIGTERM)
    output, _ = session.communicate(timeout=DEADLINE_SEC)

    assert session.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "received SIGTERM" in output
    assert [ref.pid for ref in tracked if ref.alive()] == [], output[-3000:]
