"""An engine's JSON log line names its run, and the harness attributes it from the line alone.

stdout (where the evidence line announces the run) and stderr (the log lines) are read on two
threads, so a warning can be read before the announcement; the line itself must say whose it is.
"""

from __future__ import annotations

import json
import logging

from arbitrage.logs import JsonLineFormatter
from harness.warnfail import LogEvent


def _record(level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("arbitrage.trader", level, __file__, 1, "leg %s failed", ("T1",), None)


def test_a_json_line_names_its_run_once_it_has_one() -> None:
    tagged = json.loads(JsonLineFormatter("smoke_20261203T000000Z_abc123").format(_record()))
    untagged = json.loads(JsonLineFormatter().format(_record()))
    assert tagged["run_id"] == "smoke_20261203T000000Z_abc123"
    assert tagged["message"] == "leg T1 failed" and tagged["levelno"] == logging.WARNING
    assert "run_id" not in untagged


def test_the_line_names_the_run_before_the_evidence_line_was_read() -> None:
    line = JsonLineFormatter("smoke_20261203T000000Z_abc123").format(_record())
    event = LogEvent.from_line(line, "engine pid 42", None)
    assert event.origin == "engine pid 42 run smoke_20261203T000000Z_abc123"
    assert (event.levelno, event.logger) == (logging.WARNING, "arbitrage.trader")


def test_a_line_without_a_run_takes_the_announced_one_or_none() -> None:
    line = JsonLineFormatter().format(_record())
    assert LogEvent.from_line(line, "engine pid 42", "smoke_x").origin == "engine pid 42 run smoke_x"
    assert LogEvent.from_line(line, "engine pid 42").origin == "engine pid 42"
    raw = LogEvent.from_line("Traceback (most recent call last):", "engine pid 42", "smoke_x")
    assert (raw.levelno, raw.origin) == (logging.ERROR, "engine pid 42 run smoke_x")
