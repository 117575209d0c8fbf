"""What an operator reads at the end of a real run agrees with the evidence it leaves.

The engine runs in a subprocess on the session's PostgreSQL (a database of this module's own) and
Redis (a key prefix of its own); its stderr is a pipe, so
the progress display logs plain lines, and the last one must count every closed trade, the
stop-time flatten's included.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from arbitrage.run_summary import split_closed
from evidence import names
from evidence.reader import read_json
from harness.cli_process import run_cli

pytestmark = pytest.mark.integration

PROGRESS = re.compile(r"progress (\d+)%: .* trades (\d+) open (\d+) .* pnl ([+-]\d+\.\d+) USD")


def test_last_progress_line_and_closing_summary_agree_with_chain_summary(
    tmp_path: Path, postgres_dsn: str, redis_url: str
) -> None:
    done = run_cli(
        "run", "--evidence-root", str(tmp_path / "evidence"), "--postgres-dsn", postgres_dsn,
        "--redis-url", redis_url, "--phase", "smoke", "--ticks", "1500", "--seed", "7",
        timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    evidence = [
        line.removeprefix("evidence: ") for line in done.stdout.splitlines() if line.startswith("evidence: ")
    ]
    assert len(evidence) == 1, done.stdout
    directory = Path(evidence[0])
    summary = read_json(directory / names.CHAIN_SUMMARY)
    kpi = read_json(directory / names.KPI)

    progress = [m for line in done.stderr.splitlines() if (m := PROGRESS.search(line))]
    assert progress, f"no progress line on stderr: {done.stderr[-2000:]}"
    last = progress[-1]
    assert int(last.group(1)) == 100, last.group(0)
    assert int(last.group(2)) == summary["closed_trades"], (last.group(0), summary["closed_trades"])
    assert int(last.group(3)) == len(summary["open_positions"]) == 0, last.group(0)
    assert float(last.group(4)) == pytest.approx(summary["net_pnl"]["usd"], abs=0.006), last.group(0)

    by_reason = summary["closed_by_reason"]
    exits = Counter(e["reason"] for e in kpi["trade_events"] if e["event"] == "exit")
    assert dict(exits) == by_reason, (exits, by_reason)
    assert sum(by_reason.values()) == summary["closed_trades"] > 0
    strategy, closeouts = split_closed(by_reason)
    assert strategy and set(closeouts) <= {"flatten"}, by_reason
    assert all(e.get("trade_id") and isinstance(e.get("epoch"), float) for e in kpi["trade_events"])

    tail = done.stdout.splitlines()[-4:]
    said = re.fullmatch(
        r"closed trades (\d+): (\d+) by the strategy.*, (\d+) by the stop-time flatten.*;"
        r" open positions left 0",
        tail[1],
    )
    assert said is not None, tail
    assert [int(g) for g in said.groups()] == [
        summary["closed_trades"],
        sum(strategy.values()),
        sum(closeouts.values()),
    ], (tail[1], by_reason)
    assert tail[-1] == f"next: arbitrage verify {directory}", tail
