"""The registry stops a server only when every owner is gone, and never a recycled pid's process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbitrage.service_registry import ProcessRef, RegisteredServer, ServerRegistry

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in server process (`sleep`), reaped and killed if still there at the end."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _entry(data_dir: Path, server: subprocess.Popen[bytes], owners: list[ProcessRef]) -> RegisteredServer:
    handles = data_dir / "handles.json"
    handles.write_text(json.dumps([owner.pid for owner in owners]))
    return RegisteredServer(
        kind="test", data_dir=data_dir, pid_file=data_dir / "server.pid", process_name="sleep",
        stop_signal=signal.SIGTERM, handle_file=handles, server=ProcessRef.of(server.pid), owners=owners,
    )  # fmt: skip


def test_a_recycled_pid_is_not_the_process_that_was_recorded() -> None:
    me = ProcessRef.of(os.getpid())
    assert me is not None and me.alive()
    assert not ProcessRef(pid=os.getpid(), started=me.started - 1.0).alive()


def test_sweep_stops_a_server_whose_owners_are_all_dead(
    tmp_path: Path, server: subprocess.Popen[bytes]
) -> None:
    registry = ServerRegistry(tmp_path / "registry")
    dead = ProcessRef(pid=_dead_pid(), started=0.0)
    with registry.locked():
        registry.save(_entry(tmp_path, server, [dead]))
        stopped = registry.sweep()
        assert [entry.data_dir for entry in stopped] == [tmp_path]
        assert registry.entries() == []
    assert server.wait(timeout=10) == -signal.SIGTERM
    assert json.loads((tmp_path / "handles.json").read_text()) == []


def test_sweep_keeps_a_server_with_a_live_owner_and_prunes_the_dead(
    tmp_path: Path, server: subprocess.Popen[bytes]
) -> None:
    registry = ServerRegistry(tmp_path / "registry")
    me = ProcessRef.of(os.getpid())
    assert me is not None
    with registry.locked():
        registry.save(_entry(tmp_path, server, [ProcessRef(pid=_dead_pid(), started=0.0), me]))
        assert registry.sweep() == []
        [kept] = registry.entries()
    assert kept.owners == [me]
    assert server.poll() is None


def test_sweep_leaves_the_server_being_joined(tmp_path: Path, server: subprocess.Popen[bytes]) -> None:
    registry = ServerRegistry(tmp_path / "registry")
    with registry.locked():
        registry.save(_entry(tmp_path, server, [ProcessRef(pid=_dead_pid(), started=0.0)]))
        assert registry.sweep(keep=tmp_path) == []
        [kept] = registry.entries()
    assert kept.owners == []
    assert server.poll() is None


def test_a_registry_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    from arbitrage.service_registry import RegistryError

    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "registry"
    link.symlink_to(target)
    with pytest.raises(RegistryError, match="not a directory owned by uid"), ServerRegistry(link).locked():
        pass
