"""An `arbitrage run` subprocess and what it left behind: its output, its evidence and its ledger rows."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import redis

from arbitrage.config.services import ServicesConfig
from arbitrage.services import ServiceEndpoints
from harness.cli_process import KEY_PREFIX_VAR, operator_env, start_cli
from harness.engine_output import EVIDENCE_PREFIX

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `condition` until it returns something true, and return that; fail naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)
    return found


def catches_sigterm(pid: int) -> bool:
    """Whether process `pid` has a SIGTERM handler installed (its `SigCgt` mask in /proc) or is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


DEFAULT_KEY_PREFIX = ServicesConfig().redis_key_prefix

_running: list[subprocess.Popen[bytes]] = []


def stop_leftover_engines() -> None:
    """SIGKILL every engine started here that still runs (a test that failed before its wait)."""
    while _running:
        process = _running.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


class EngineProcess:
    """`arbitrage run` on explicit services; stdout and stderr go to files in `out`.

    It runs in an operator's environment (`harness.cli_process`), which keeps the module's Redis
    key prefix, and `env` on top."""

    def __init__(
        self, out: Path, services: ServiceEndpoints, *args: str, env: dict[str, str] | None = None,
        evidence_root: Path | None = None,
    ) -> None:  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.dsn = services.postgres_dsn
        self.redis_url = services.redis_url
        self.evidence_root = evidence_root or out / "evidence"
        command = (
            "run", "--evidence-root", str(self.evidence_root),
            "--postgres-dsn", services.postgres_dsn, "--redis-url", services.redis_url, *args,
        )  # fmt: skip
        self.redis_key_prefix = operator_env(env).get(KEY_PREFIX_VAR, DEFAULT_KEY_PREFIX)
        with (out / "stdout.txt").open("wb") as stdout, (out / "stderr.txt").open("wb") as stderr:
            self.process: subprocess.Popen[bytes] = start_cli(
                *command, env=env, cwd=out, stdout=stdout, stderr=stderr
            )
        _running.append(self.process)
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    @property
    def stderr(self) -> str:
        return (self.out / "stderr.txt").read_text()

    def announced(self, prefix: str) -> str | None:
        """What the engine printed after `prefix` on stdout (`evidence: DIR`, `metrics: URL`), once it has."""
        for line in (self.out / "stdout.txt").read_text().splitlines():
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
        return None

    def evidence_dir(self) -> Path | None:
        found = self.announced(EVIDENCE_PREFIX)
        return None if found is None else Path(found)

    def wait_for_evidence(self, timeout: float = 60) -> Path:
        """The evidence directory, once the engine printed it; fails with its stderr if it exited first."""
        wait_for(
            lambda: self.evidence_dir() is not None or not self.alive(), timeout, "the evidence directory"
        )
        path = self.evidence_dir()
        assert path is not None, f"the engine exited {self.process.returncode}: {self.stderr}"
        return path

    def run_id(self) -> str | None:
        path = self.evidence_dir()
        return None if path is None else path.name

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def legs(self) -> list[tuple[str, str, str, str]]:
        """(trade_id, leg, symbol, reason) of every ledger row of this run."""
        rows = self.query(
            "SELECT trade_id, leg, symbol, reason FROM trade_legs WHERE run_id = %s ORDER BY id",
            self.run_id(),
        )
        return [(str(t), str(leg), str(s), str(r)) for t, leg, s, r in rows]

    def open_trades(self) -> dict[str, str]:
        """trade_id -> symbol of this run's entries without an exit leg, from the ledger."""
        legs = self.legs()
        exited = {t for t, leg, _, _ in legs if leg == "exit"}
        return {t: s for t, leg, s, _ in legs if leg == "entry" and t not in exited}

    def runs_row(self) -> tuple[Any, ...]:
        """(status, stop_reason, exit_code, ended_at) of this run's `runs` row."""
        rows = self.query(
            "SELECT status, stop_reason, exit_code, ended_at FROM runs WHERE run_id = %s", self.run_id()
        )
        assert len(rows) == 1, f"runs rows for {self.run_id()}: {rows}"
        return rows[0]

    def redis_status(self) -> dict[str, str]:
        """The run's hash in Redis, under the run's key prefix."""
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            found: dict[Any, Any] = client.hgetall(f"{self.redis_key_prefix}:run:{self.run_id()}")
            return {str(k): str(v) for k, v in found.items()}
        finally:
            client.close()


def arbitrage_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("arbitrage:")]


def sealed_manifest(evidence: Path) -> dict[str, Any]:
    """The manifest, after checking that every file it lists matches its sha256 and size on disk."""
    manifest: dict[str, Any] = json.loads((evidence / "manifest.json").read_text())
    assert manifest["files"], f"{evidence}: the manifest lists no files"
    for name, digest in manifest["files"].items():
        data = (evidence / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest["sha256"], (
            f"{name}: sha256 differs from the manifest"
        )
        assert len(data) == digest["bytes"], f"{name}: size differs from the manifest"
    return manifest


def manifests_running(root: Path) -> list[Path]:
    """Manifests under `root` that still say `running`."""
    return [p for p in root.glob("*/manifest.json") if json.loads(p.read_text())["status"] == "running"]
