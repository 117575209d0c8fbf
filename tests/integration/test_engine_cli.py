"""`arbitrage run` as an operator meets it: bad input fails fast with one line, runs replay exactly.

Each test drives the real engine in a subprocess with real embedded PostgreSQL and Redis in a
private data directory, except the replay and slow-loop runs, which only need some server: they
use the session's shared ones (a database of this module's own).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from evidence import names
from evidence.invariants import max_heartbeat_gap
from evidence.reader import read_json, read_jsonl
from harness.cli_process import run_cli
from tests.support.ports import refused_port

pytestmark = pytest.mark.integration


def engine(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[
    subprocess.CompletedProcess[str], float
]:  # fmt: skip
    changes = {"ARB_SERVICES__DATA_DIR": str(tmp_path / "services"), **(env or {})}
    tmp_path.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = run_cli(
        "run", "--evidence-root", str(tmp_path / "evidence"), *args,
        env=changes, timeout=timeout, cwd=tmp_path,
    )  # fmt: skip
    return done, time.monotonic() - started


def evidence_dir(done: subprocess.CompletedProcess[str]) -> Path:
    lines = [line for line in done.stdout.splitlines() if line.startswith("evidence: ")]
    assert len(lines) == 1, done.stdout
    return Path(lines[0].removeprefix("evidence: "))


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a hung server."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


CONFIG_CASES = {
    "broken_yaml": ("run: [unclosed\n", "broken YAML at line 2"),
    "unknown_key": ("run:\n  sede: 3\n", "unknown key 'run.sede'"),
    "empty_file": ("", "file is empty"),
    "bad_value": ("strategy:\n  max_hold_sec: -4\n", "strategy.max_hold_sec = -4"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_exits_1_with_one_line_and_no_evidence(tmp_path: Path, case: str) -> None:
    text, fragment = CONFIG_CASES[case]
    config = tmp_path / "config.yml"
    config.write_text(text)
    done, _ = engine(tmp_path, "--ticks", "5", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "evidence").exists()


def test_missing_config_file_exits_1(tmp_path: Path) -> None:
    done, _ = engine(tmp_path, "--ticks", "5", "--config", str(tmp_path / "nope.yml"))
    assert (done.returncode, done.stderr.strip()) == (
        1,
        f"arbitrage: config error: {tmp_path / 'nope.yml'}: file not found",
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--duration=-5s"], "invalid duration '-5s'"),
        (["--duration", "ninety"], "invalid duration 'ninety'"),
        (["--phase", "forever"], "invalid choice: 'forever'"),
        (["--heartbeat-interval", "0"], "invalid heartbeat interval '0'"),
    ],
)
def test_usage_errors_exit_2_before_anything_starts(tmp_path: Path, args: list[str], fragment: str) -> None:
    done, _ = engine(tmp_path, *args)
    assert done.returncode == 2
    assert fragment in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert not (tmp_path / "evidence").exists()
    assert not (tmp_path / "services").exists()


@pytest.mark.parametrize("flag", ["--postgres-dsn", "--redis-url"])
def test_unreachable_service_fails_within_10s(
    tmp_path: Path, flag: str, silent_listener: int, postgres_dsn: str, redis_url: str
) -> None:
    """A refused port fails at once, so that run measures the engine's own start-up (which a loaded
    machine stretches); a server that accepts and never answers may cost at most 10 s more. The two
    go side by side, under the same load. The other service is the session's, so no embedded server
    is started for it."""
    scheme = "postgresql://u@127.0.0.1:{}/db" if flag == "--postgres-dsn" else "redis://127.0.0.1:{}/0"
    other = ("--redis-url", redis_url) if flag == "--postgres-dsn" else ("--postgres-dsn", postgres_dsn)
    ports = {"refused": refused_port(), "silent": silent_listener}
    with ThreadPoolExecutor(len(ports)) as pool:
        futures = {
            name: pool.submit(engine, tmp_path / name, "--ticks", "5", flag, scheme.format(port), *other)
            for name, port in ports.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    elapsed = {name: seconds for name, (_, seconds) in results.items()}
    for name, (done, _) in results.items():
        assert done.returncode == 1
        assert "unreachable at 127.0.0.1" in done.stderr or "unreachable at redis://127.0.0.1" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / name / "evidence").exists()
    waited = elapsed["silent"] - elapsed["refused"]
    assert waited < 10.0, f"{flag}: the silent server cost {waited:.1f}s more than a refused port ({elapsed})"


def summary_numbers(directory: Path) -> tuple[object, ...]:
    summary = read_json(directory / names.CHAIN_SUMMARY)
    return (summary["closed_trades"], summary["wins"], summary["losses"], json.dumps(summary["net_pnl"]))


REPLAY_TICKS = "500"
"""Enough ticks for dozens of round trips; the three runs go side by side, which replay must survive."""


def test_same_seed_same_ticks_same_trades(tmp_path: Path, postgres_dsn: str, redis_url: str) -> None:
    servers = ("--postgres-dsn", postgres_dsn, "--redis-url", redis_url)
    seeds = {"first": "7", "second": "7", "other": "8"}
    with ThreadPoolExecutor(len(seeds)) as pool:
        futures = {
            name: pool.submit(
                engine, tmp_path / name, "--phase", "smoke", "--ticks", REPLAY_TICKS, "--seed", seed, *servers
            )
            for name, seed in seeds.items()
        }
        first, second, other = (futures[name].result()[0] for name in seeds)
    assert (first.returncode, second.returncode, other.returncode) == (0, 0, 0), first.stderr + second.stderr
    a, b, c = (summary_numbers(evidence_dir(run)) for run in (first, second, other))
    assert a == b
    assert a != c
    assert isinstance(a[0], int) and a[0] > 0
    wallclock = read_json(evidence_dir(first) / names.CHAIN_SUMMARY)["invariants"]["wallclock"]
    assert (wallclock["applicable"], wallclock["passed"]) == (False, None)


SLOW_TICK_SEC = 4
"""Longer than the 1 s interval plus the invariant's 2 s slack: a heartbeat that waited for the loop
would leave gaps of a whole tick."""
SLOW_RUN_SEC = 4
"""One whole slow tick: the first tick's delay ends the run (the delay is not cut short by the
duration), and the heartbeat must beat every second through it."""


@pytest.mark.slow
def test_slow_loop_does_not_stretch_the_heartbeat(tmp_path: Path, postgres_dsn: str, redis_url: str) -> None:
    done, _ = engine(
        tmp_path, "--duration", f"{SLOW_RUN_SEC}s", "--heartbeat-interval", "1",
        "--postgres-dsn", postgres_dsn, "--redis-url", redis_url,
        env={
            "ARB_RUN__DEBUG_TICK_DELAY_SEC": str(SLOW_TICK_SEC),
            # A 4 s tick is a slow loop on purpose: the watchdog's 2 s loop latency would stop the run.
            "ARB_WATCHDOG__LOOP_LATENCY_WARN_MS": "10000",
            "ARB_WATCHDOG__LOOP_LATENCY_ERROR_MS": "20000",
        },
    )  # fmt: skip
    directory = evidence_dir(done)
    summary = read_json(directory / names.CHAIN_SUMMARY)
    beats = read_jsonl(directory / names.HEARTBEAT).records
    gap = max_heartbeat_gap(
        [b["epoch_time_precise"] for b in beats], summary["run_started_epoch"], summary["run_ended_epoch"]
    )
    loops = [b["loop_count"] for b in beats]
    assert gap <= 3.0, f"max heartbeat gap {gap:.2f}s > 3s with a {SLOW_TICK_SEC} s tick"
    assert len(beats) >= SLOW_RUN_SEC
    assert loops[-1] <= 2, f"loop_count {loops[-1]}: the tick delay did not slow the loop"
    assert loops == sorted(loops)
