"""Acceptance: `arbitrage run --mode live` refuses every arming case that is not exactly right,
with exit 1, one `arbitrage: live mode refused: ...` line, an event_log row, no run started,
and no private exchange call.

Each case runs over `--market ccxt` against a real `arbitrage sim` subprocess, which counts
every private (signed) request it serves: the count must stay 0. The `exchange_simulator`
fixture may return None to run the table on the synthetic market instead, where a private call
is impossible by construction.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from arbitrage.ledger import connect
from arbitrage.ops.live_arm import ARM_ACK_VALUE, KEY_VARS
from harness.cli_process import EnvChanges
from harness.exchange_sim.client import start_exchange_sim
from tests.support.databases import fresh_database
from tests.support.live_runs import (
    arbitrage,
    release_kill_switch,
    services_args,
)

pytestmark = pytest.mark.integration

FAKE_KEYS = {name: f"FAKE-{name}-0c4e1b" for name in KEY_VARS}


class PrivateCallCounter(Protocol):
    """A running exchange simulator: its base URL and how many private calls it has served."""

    url: str

    def private_calls(self) -> int: ...

    def private_requests(self) -> dict[str, int]: ...


@pytest.fixture(scope="module")
def exchange_simulator() -> Iterator[PrivateCallCounter | None]:
    """One simulator for the module: no case may make a private call, so its private request log
    stays empty from the first case to the last, and each case checks it is still empty."""
    with start_exchange_sim("--seed", "5") as sim:
        yield sim


@pytest.fixture
def dsn(postgres_server: str) -> str:
    return fresh_database(postgres_server, "arm")


@pytest.fixture
def released(dsn: str, request: pytest.FixtureRequest) -> str:
    """The case's database with its kill switch released, so only the case's own refusal stops the run."""
    release_kill_switch(dsn, f"{request.node.name} refusal case", "test_live_arming_refusals")
    return dsn


def live_run(
    tmp_path: Path, dsn: str, redis_url: str, env: EnvChanges, *args: str
) -> subprocess.CompletedProcess[str]:
    """`arbitrage run --mode live --ticks 20 ARGS` on the case's database and evidence root."""
    services = services_args(tmp_path / "evidence", dsn, redis_url)
    return arbitrage("run", "--mode", "live", "--ticks", "20", *args, *services, env=env, cwd=tmp_path)


ARMING_VARS = ("LIVE_ARM_ACK", "LIVE_ARM_AT", "LIVE_MAX_NOTIONAL_USD", "ARBITRAGE_ENV")
ACK, NOTIONAL = "LIVE_ARM_ACK", "LIVE_MAX_NOTIONAL_USD"

# case -> (changes to a correctly armed env: None removes a variable, an int for LIVE_ARM_AT is
# an offset from now), the expected reason fragment, the event_log event recording the refusal
CASES: dict[str, tuple[dict[str, str | int | None], str, str]] = {
    "nothing set": (
        {ACK: None, "LIVE_ARM_AT": None, NOTIONAL: None},
        "LIVE_ARM_ACK is not set",
        "LIVE_ARM_REFUSED",
    ),
    "wrong ACK": ({ACK: "YES_I_AM_SURE"}, "is not exactly I_UNDERSTAND_LIVE_RISK", "LIVE_ARM_REFUSED"),
    "lowercase ACK": ({ACK: ARM_ACK_VALUE.lower()}, "(case-sensitive)", "LIVE_ARM_REFUSED"),
    "LIVE_ARM_AT 700 s old": ({"LIVE_ARM_AT": -700}, "s old, the arm window is 600 s", "LIVE_ARM_REFUSED"),
    "LIVE_ARM_AT in the future": ({"LIVE_ARM_AT": 3600}, "s in the future", "LIVE_ARM_REFUSED"),
    "non-numeric LIVE_ARM_AT": ({"LIVE_ARM_AT": "soon"}, "'soon' is not an integer", "LIVE_ARM_REFUSED"),
    "notional 5": ({NOTIONAL: "5"}, "=5 is outside [10, 1000]", "LIVE_ARM_REFUSED"),
    "notional 2000": ({NOTIONAL: "2000"}, "=2000 is outside [10, 1000]", "LIVE_ARM_REFUSED"),
    "notional nan": ({NOTIONAL: "nan"}, "'nan' is not a plain decimal", "LIVE_ARM_REFUSED"),
    "armed, kill switch at its default": ({}, "kill_switch: ACTIVE (default", "LIVE_REFUSED"),
}


def arming_env(changes: dict[str, str | int | None]) -> dict[str, str | None]:
    """The process env for a case, as changes to the operator's environment (None removes): no
    inherited arming, fake keys, then the case's arming."""
    now = int(time.time())
    env: dict[str, str | None] = dict.fromkeys(ARMING_VARS, None) | FAKE_KEYS
    env.update({ACK: ARM_ACK_VALUE, "LIVE_ARM_AT": str(now), NOTIONAL: "100", "ARBITRAGE_ENV": "live"})
    for name, value in changes.items():
        env[name] = str(now + value) if isinstance(value, int) else value
    return env


@pytest.mark.parametrize("case", list(CASES))
def test_live_arming_refusal(
    case: str,
    tmp_path: Path,
    dsn: str,
    redis_url: str,
    exchange_simulator: PrivateCallCounter | None,
    record_property: Any,
) -> None:
    changes, fragment, event_type = CASES[case]
    args: list[str] = []
    before = 0
    if exchange_simulator is not None:
        args += ["--market", "ccxt", "--exchange-url", exchange_simulator.url]
        before = exchange_simulator.private_calls()
    done = live_run(tmp_path, dsn, redis_url, arming_env(changes), *args)
    private_calls = 0 if exchange_simulator is None else exchange_simulator.private_calls() - before
    private = {} if exchange_simulator is None else exchange_simulator.private_requests()
    message = done.stderr.strip()
    row = {"case": case, "exit": done.returncode, "message": message, "private_calls": private_calls}
    record_property("arming_row", json.dumps(row | {"private_requests": private}))

    assert done.returncode == 1, done.stderr
    assert message.count("\n") == 0, message
    assert message.startswith("arbitrage: live mode refused: ") and fragment in message, message
    assert "Traceback" not in done.stderr
    assert private_calls == 0
    assert private == {}, private
    assert not any(key in done.stdout + done.stderr for key in FAKE_KEYS.values())
    assert list((tmp_path / "evidence").glob("*")) == [], "a refused live run must not start"
    with connect(dsn, 5.0, 5000) as conn:
        logged = conn.execute("SELECT event_type, payload FROM event_log ORDER BY id").fetchall()
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()
        legs = conn.execute("SELECT count(*) FROM trade_legs").fetchone()
    assert event_type in [row[0] for row in logged], logged
    refusal = next(payload for kind, payload in logged if kind == event_type)
    assert refusal["reason"] in message
    assert (runs, legs) == ((0,), (0,))


def test_armed_live_run_on_the_synthetic_market_is_refused(
    tmp_path: Path, released: str, redis_url: str
) -> None:
    """Fully armed, kill switch released, preflight passing: live still needs a venue (--market ccxt)."""
    dsn = released
    done = live_run(tmp_path, dsn, redis_url, arming_env({}), "--market", "synthetic")
    message = done.stderr.strip()
    assert done.returncode == 1, done.stderr
    assert message == "arbitrage: live mode refused: live trading needs --market ccxt" + (
        " (with --exchange-url for `arbitrage sim`)"
    ), message
    assert list((tmp_path / "evidence").glob("*")) == []
    with connect(dsn, 5.0, 5000) as conn:
        logged = conn.execute("SELECT event_type, payload FROM event_log ORDER BY id").fetchall()
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()
    refusal = next(payload for kind, payload in logged if kind == "LIVE_REFUSED")
    assert refusal["reason"] in message
    assert runs == (0,)


def test_a_debug_load_knob_refuses_a_live_run_before_any_private_request(
    tmp_path: Path, released: str, redis_url: str, exchange_simulator: PrivateCallCounter | None
) -> None:
    """Fully armed, kill switch released: the CPU burner of the anomaly tests is never for live."""
    assert exchange_simulator is not None
    dsn = released
    env = arming_env({}) | {"ARB_DEBUG__CPU_BURN_THREADS": "2"}
    done = live_run(
        tmp_path, dsn, redis_url, env, "--market", "ccxt", "--exchange-url", exchange_simulator.url
    )
    message = done.stderr.strip()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert message == (
        "arbitrage: live mode refused: debug.cpu_burn_threads=2: test-only load, expected 0 in live mode"
    ), message
    assert exchange_simulator.private_requests() == {}
    assert list((tmp_path / "evidence").glob("*")) == []
    with connect(dsn, 5.0, 5000) as conn:
        logged = conn.execute("SELECT payload FROM event_log WHERE event_type = 'LIVE_REFUSED'").fetchall()
    assert [row[0]["reason"] for row in logged] == [message.removeprefix("arbitrage: live mode refused: ")]
