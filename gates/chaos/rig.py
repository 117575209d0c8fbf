"""One chaos worker's rig: the servers, proxies, simulator and disk an engine run is faulted through.

Each worker owns a private PostgreSQL and Redis (so server-side faults hit nobody else), a fault
proxy in front of each (so network faults hit only the engine's connections), an exchange
simulator, and an evidence root on a small tmpfs (so `disk-full` is a real ENOSPC). The engine is
pointed at all of them by `engine_args()` and otherwise runs exactly as users run it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from arbitrage.service_registry import RegistryError, sweep_orphaned_servers
from gates.chaos.disk import MountError, mount_tmpfs, unmount
from gates.chaos.external_pg import ExternalPostgres
from gates.chaos.postgres import ControlledPostgres
from gates.chaos.proxy import FaultProxy
from gates.chaos.redis import ControlledRedis
from harness.exchange_sim.client import SimProcess, start_exchange_sim

DATABASE: Final = "chaos"
EVIDENCE_TMPFS_MB: Final = 160
"""The engine refuses to start with less than 100 MB free (run_builder.MIN_FREE_DISK_MB); the rest is
room for the evidence of a few runs (the runner moves each run's evidence off the tmpfs)."""
FILLER_NAME: Final = ".chaos-disk-full"
"""The file `disk-full` grows at the evidence root (a dot name: nothing the engine reads)."""
ENGINE_STOP_SEC: Final = 10.0


@dataclass
class Rig:
    """The per-worker parts; build with `Rig.create(root)`, end with `close()`."""

    root: Path
    pg: ControlledPostgres | ExternalPostgres
    pg_proxy: FaultProxy
    redis: ControlledRedis
    redis_proxy: FaultProxy
    sim: SimProcess
    evidence_root: Path
    disk_full_unavailable: str | None = None
    """Why `disk-full` cannot strike on this rig (the evidence root is no tmpfs), or None."""
    engine: subprocess.Popen[str] | None = None
    mounted: bool = False
    active_net_faults: set[str] = field(default_factory=set)
    """The network fault kinds struck and not yet cleared (`gates.chaos.faults` keeps it)."""
    _closers: list[Callable[[], object]] = field(default_factory=list, repr=False)

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        sim_seed: int = 7,
        tmpfs_mb: int = EVIDENCE_TMPFS_MB,
        postgres_dsn: str | None = None,
    ) -> Rig:
        """Start every part under `root`; on any failure, stop what had started and re-raise.

        Orphaned servers of earlier killed runs are swept first. With `postgres_dsn` the worker
        uses that server (a database of its own when it may create one) instead of starting one.
        """
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(RegistryError):
            sweep_orphaned_servers()
        closers: list[Callable[[], object]] = []
        try:
            pg: ControlledPostgres | ExternalPostgres
            if postgres_dsn is None:
                pg = ControlledPostgres.create()
                closers.append(pg.close)
                with psycopg.connect(pg.admin_dsn, autocommit=True, connect_timeout=10) as admin:
                    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
                pg.database = DATABASE
                pg_proxy = FaultProxy("127.0.0.1", pg.port).start()
            else:
                pg = ExternalPostgres(postgres_dsn)
                pg.own_database()
                closers.append(pg.close)
                pg_proxy = FaultProxy(pg.host, pg.port).start()
            closers.append(pg_proxy.close)
            redis = ControlledRedis.create(root / "redis")
            closers.append(redis.close)
            redis_proxy = FaultProxy("127.0.0.1", redis.port).start()
            closers.append(redis_proxy.close)
            sim = start_exchange_sim("--seed", str(sim_seed))
            closers.append(sim.stop)
            evidence_root = root / "evidence"
            mounted, unavailable = _evidence_disk(evidence_root, tmpfs_mb)
            if mounted:
                closers.append(lambda: unmount(evidence_root))
        except BaseException:
            _close_all(closers)
            raise
        return cls(
            root=root, pg=pg, pg_proxy=pg_proxy, redis=redis, redis_proxy=redis_proxy, sim=sim,
            evidence_root=evidence_root, disk_full_unavailable=unavailable, mounted=mounted,
            _closers=closers,
        )  # fmt: skip

    # -- what the engine is given --------------------------------------------------------------
    @property
    def engine_dsn(self) -> str:
        """The rig's database, through the PostgreSQL fault proxy."""
        return make_conninfo(self.direct_dsn, host="127.0.0.1", port=self.pg_proxy.port)

    @property
    def direct_dsn(self) -> str:
        """The rig's database, straight to the server (for the checker: no proxy fault reaches it)."""
        return self.pg.dsn_for(self.pg.database or DATABASE)

    @property
    def engine_redis_url(self) -> str:
        """The rig's Redis, through the Redis fault proxy."""
        return f"redis://127.0.0.1:{self.redis_proxy.port}/0"

    @property
    def filler(self) -> Path:
        return self.evidence_root / FILLER_NAME

    def engine_args(self) -> list[str]:
        """The `arbitrage run` flags that put the engine behind this rig's proxies, simulator and disk."""
        return [
            "--postgres-dsn", self.engine_dsn, "--redis-url", self.engine_redis_url,
            "--market", "ccxt", "--exchange-url", self.sim.url, "--evidence-root", str(self.evidence_root),
        ]  # fmt: skip

    # -- teardown ------------------------------------------------------------------------------
    def stop_engine(self) -> int | None:
        """SIGKILL an engine still running (a run the caller gave up on) and reap it; its exit code."""
        engine = self.engine
        if engine is None:
            return None
        if engine.poll() is None:
            engine.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                engine.wait(timeout=ENGINE_STOP_SEC)
        return engine.returncode

    def close(self) -> None:
        """Stop the engine if it runs, then every part in reverse order; idempotent."""
        self.stop_engine()
        closers, self._closers = self._closers, []
        _close_all(closers)


def _evidence_disk(path: Path, size_mb: int) -> tuple[bool, str | None]:
    """Mount a tmpfs on `path` when root; else a plain directory and the reason `disk-full` is off."""
    if os.geteuid() != 0:
        path.mkdir(parents=True, exist_ok=True)
        return False, (
            "disk-full needs a tmpfs evidence root, and mounting one needs root;"
            f" this runs as uid {os.geteuid()}"
        )
    try:
        mount_tmpfs(path, size_mb * 1024)
    except MountError as exc:
        return False, f"disk-full needs a tmpfs evidence root: {exc}"
    return True, None


def _close_all(closers: list[Callable[[], object]]) -> None:
    """Run every closer, last first; the first error is raised after all of them ran."""
    errors: list[BaseException] = []
    for closer in reversed(closers):
        try:
            closer()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
