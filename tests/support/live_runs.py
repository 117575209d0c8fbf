"""Armed live runs against `arbitrage sim` and the operator commands that follow them.

The live acceptance tests share these: the simulator's test keys, a correctly armed environment, a
database whose kill switch is released, a live run bounded by the round trips it closes (SIGTERM
once PostgreSQL holds them, not a fixed wallclock), and `arbitrage reconcile`/`run` as
subprocesses in an operator's environment (`harness.cli_process`: no inherited services or keys).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arbitrage.ledger import connect
from gates.chaos import live_campaign as campaign
from harness.cli_process import EnvChanges, run_cli
from harness.engine import EngineProcess
from harness.exchange_sim.client import SimProcess

SIM_KEYS = {
    "UPBIT_ACCESS_KEY": "sim-upbit-access",
    "UPBIT_SECRET_KEY": "sim-upbit-secret",
    "BINANCE_API_KEY": "sim-binance-key",
    "BINANCE_API_SECRET": "sim-binance-secret",
}
"""The keys `arbitrage sim` accepts by default (test keys, never real credentials)."""
CREDENTIALS = {
    "upbit": (SIM_KEYS["UPBIT_ACCESS_KEY"], SIM_KEYS["UPBIT_SECRET_KEY"]),
    "binance": (SIM_KEYS["BINANCE_API_KEY"], SIM_KEYS["BINANCE_API_SECRET"]),
}
"""The same keys per venue, as `VenuePair` takes them."""
TRADING_SIM = ("--seed", "3", "--premium-half-life-sec", "1")
"""A simulator whose premiums revert fast enough that an armed run trades within seconds."""
RUN_BOUND_SEC = 120
"""Only an upper bound: `run_until_closed_trades` stops the run once it has traded enough."""


def armed_env() -> dict[str, str]:
    """A correctly armed live environment (armed now) with the simulator's keys and trading thresholds."""
    return {
        **campaign.armed_env(),
        "ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "2.6",
        "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "2.4",
    }


def release_kill_switch(dsn: str, why: str, by: str) -> None:
    """Create the ledger schema in `dsn` if needed and deactivate its kill switch (ACTIVE by default)."""
    assert not campaign.release_kill_switch(dsn, why, by).active


def record_reconciled(dsn: str, run_id: str, by: str) -> None:
    """POSITIONS_RECONCILED for the run, as an operator records it after reconciling."""
    assert campaign.record_reconciled(dsn, run_id, by)


def closed_trades(dsn: str, run_id: str) -> int:
    """Round trips in the ledger so far: exit legs of the run."""
    with connect(dsn, 5.0, 5000) as conn:
        row = conn.execute(
            "SELECT count(*) FROM trade_legs WHERE run_id = %s AND leg = 'exit'", (run_id,)
        ).fetchone()
    return 0 if row is None else int(row[0])


def open_entries(dsn: str, run_id: str) -> set[str]:
    """Trade ids of the run's entries without an exit leg, from the ledger."""
    with connect(dsn, 5.0, 5000) as conn:
        rows = conn.execute(
            "SELECT e.trade_id FROM trade_legs e WHERE e.run_id = %s AND e.leg = 'entry' AND NOT EXISTS"
            " (SELECT 1 FROM trade_legs x WHERE x.run_id = e.run_id AND x.trade_id = e.trade_id"
            " AND x.leg = 'exit')",
            (run_id,),
        ).fetchall()
    return {str(row[0]) for row in rows}


def events_of(dsn: str, run_id: str, *kinds: str) -> list[tuple[str, dict[str, Any]]]:
    """The run's events of these kinds in PostgreSQL, in order: (event_type, payload)."""
    with connect(dsn, 5.0, 5000) as conn:
        rows = conn.execute(
            "SELECT event_type, payload FROM event_log WHERE run_id = %s AND event_type = ANY(%s)"
            " ORDER BY id",
            (run_id, list(kinds)),
        ).fetchall()
    return [(kind, payload) for kind, payload in rows]


def run_until_closed_trades(run: EngineProcess, dsn: str, args: Sequence[str], trades: int) -> int:
    """Start the live run, stop it with SIGTERM once the ledger holds `trades` round trips; the exit
    code. Fails if the run ends or reaches its `RUN_BOUND_SEC` bound before that."""
    run.start([*args, "--duration", f"{RUN_BOUND_SEC}s"])
    deadline = time.monotonic() + RUN_BOUND_SEC
    run_id = run.wait_for_evidence_dir(90).name
    while closed_trades(dsn, run_id) < trades:
        assert run.exit_code is None, f"the run ended before {trades} round trips\n{run.describe()}"
        assert time.monotonic() < deadline, f"fewer than {trades} round trips\n{run.describe()}"
        time.sleep(0.2)
    return run.terminate()


def arbitrage(
    *args: str, env: EnvChanges, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`arbitrage ARGS` as an operator runs it, with `env` set (None removes) on the operator's
    environment: output captured, exit code not checked."""
    return run_cli(*args, env=env, cwd=cwd, timeout=timeout)


def services_args(evidence_root: Path, dsn: str, redis_url: str) -> list[str]:
    """The `run`/`reconcile` flags that point a command at explicit services and an evidence root."""
    return ["--evidence-root", str(evidence_root), "--postgres-dsn", dsn, "--redis-url", redis_url]


def reconcile(
    run_id: str,
    sim: SimProcess,
    evidence_root: Path,
    dsn: str,
    redis_url: str,
    settings: EnvChanges | None = None,
) -> tuple[int, str, str]:
    """`arbitrage reconcile --run RUN_ID` against the simulator, with the operator's `settings` (the
    run's own, such as its universe): exit code, stdout, stderr."""
    flags = ["--run", run_id, "--exchange-url", sim.url, *services_args(evidence_root, dsn, redis_url)]
    done = arbitrage("reconcile", *flags, env={**SIM_KEYS, **(settings or {})})
    return done.returncode, done.stdout, done.stderr


def problems(stdout: str) -> list[str]:
    """The `problem: ...` lines of a reconcile report, without the prefix."""
    return [line.removeprefix("problem: ") for line in stdout.splitlines() if line.startswith("problem: ")]
