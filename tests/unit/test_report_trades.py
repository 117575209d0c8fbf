"""The report's trades: round trips paired from kpi.json, placed on the run's clock, shown sortable."""

from __future__ import annotations

import re
from pathlib import Path

from evidence.reader import load_evidence
from gates.analyzer import analyze
from gates.report import render
from gates.report_trades import RunClock, trade_rows, trade_table
from tests.evidence_factory import make_evidence_dir

START = 1_800_000_000.0


def event(
    tick: int, at: float, kind: str, symbol: str, trade: str, premium: float, **more: object
) -> dict[str, object]:
    return {"tick": tick, "epoch": START + at, "event": kind, "symbol": symbol, "trade_id": trade,
            "premium_pct": premium, **more}  # fmt: skip


EVENTS = [
    event(4, 2.0, "entry", "BTC", "T000001", 3.4),
    event(6, 3.0, "entry", "ETH", "T000002", 3.1),
    event(20, 10.0, "exit", "BTC", "T000001", 1.9, pnl_usd=1.25, reason="threshold"),
    event(30, 15.0, "entry", "BTC", "T000003", 3.6),
    event(88, 44.0, "exit", "ETH", "T000002", 2.8, pnl_usd=-0.5, reason="flatten"),
]


def evidence(tmp_path: Path, events: list[dict[str, object]], **summary: object) -> Path:
    return make_evidence_dir(
        tmp_path / "run",
        manifest={"config": {"run": {"tick_interval_sec": 0.5}}},
        chain_summary={"run_started_epoch": START, "warnings_count": 0, "warnings": [], **summary},
        kpi={"trade_events": events},
    )


def test_entries_pair_with_their_exits_by_trade_id_on_seconds_since_run_start(tmp_path: Path) -> None:
    rows = trade_rows(load_evidence(evidence(tmp_path, EVENTS)))
    assert [(r.trade_id, r.symbol, r.entry_s, r.exit_s, r.reason, r.pnl_usd) for r in rows] == [
        ("T000001", "BTC", 2.0, 10.0, "threshold", 1.25),
        ("T000002", "ETH", 3.0, 44.0, "flatten", -0.5),
        ("T000003", "BTC", 15.0, None, None, None),
    ]
    assert [r.closeout for r in rows] == [False, True, False]


def test_old_evidence_without_epochs_or_ids_pairs_by_symbol_and_places_by_tick(tmp_path: Path) -> None:
    old = [{k: v for k, v in e.items() if k not in ("epoch", "trade_id")} for e in EVENTS]
    bundle = load_evidence(evidence(tmp_path, old))
    clock = RunClock.of(bundle)
    assert clock.tick_seconds == 0.5
    rows = trade_rows(bundle, clock)
    assert [(r.symbol, r.entry_s, r.exit_s) for r in rows] == [
        ("BTC", 2.0, 10.0),
        ("ETH", 3.0, 44.0),
        ("BTC", 15.0, None),
    ]


def test_trade_table_is_sortable_and_marks_closeouts(tmp_path: Path) -> None:
    table = trade_table(trade_rows(load_evidence(evidence(tmp_path, EVENTS))))
    assert "<table class='sortable'>" in table and "<script>" in table
    assert table.count("<tr class=closeout>") == 1
    assert re.search(r"<tr class=closeout><td class='' data-v='T000002'>", table)
    assert "data-v='-0.5'>-0.5000</td>" in table
    assert "2 closed: 1 by the strategy, 1 at stop" in table
    assert "open at end" in table


def test_a_run_without_trades_says_so_and_ships_no_script(tmp_path: Path) -> None:
    page = render(analyze(evidence(tmp_path, [])))
    assert "No trades: kpi.json records no trade entries or exits." in page
    assert "<script" not in page
    assert "no closed trades" in page
