"""The lines an operator reads when a run ends: what it closed, who closed it, its PnL, what to run next.

They are read back from the `chain_summary.json` the close-out just wrote, so they cannot disagree
with it: the trades the strategy closed (threshold, max hold) are told apart from those the
stop-time flatten (or a guard trip's flatten) closed.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evidence import names
from evidence.ramp_checks import STRATEGY_EXITS


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def split_closed(by_reason: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(closed by the strategy, closed at stop) from a `closed_by_reason` map, zero counts dropped."""
    counts = {str(k): _count(v) for k, v in by_reason.items() if _count(v)}
    strategy = {k: v for k, v in counts.items() if k in STRATEGY_EXITS}
    closeouts = {k: v for k, v in counts.items() if k not in STRATEGY_EXITS}
    return strategy, closeouts


def _parts(counts: Mapping[str, int]) -> str:
    return f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else ""


def summary_lines(summary: Mapping[str, Any], evidence_dir: Path) -> list[str]:
    """The closing summary of one run, from its chain summary."""
    by_reason = summary.get("closed_by_reason")
    strategy, closeouts = split_closed(by_reason if isinstance(by_reason, Mapping) else {})
    left_open = summary.get("open_positions")
    pnl = summary.get("net_pnl") if isinstance(summary.get("net_pnl"), Mapping) else {}
    assert isinstance(pnl, Mapping)
    usd, krw = pnl.get("usd"), pnl.get("krw")
    money = f"{usd:+.4f} USD" if isinstance(usd, int | float) else "unknown"
    if isinstance(krw, int | float):
        money += f" ({krw:+,.0f} KRW)"
    return [
        f"run {summary.get('run_id')} ended: exit {summary.get('exit_code')}, stop reason "
        f"{summary.get('stop_reason')}, {summary.get('duration_seconds')} s",
        f"closed trades {_count(summary.get('closed_trades'))}: {sum(strategy.values())} by the strategy"
        f"{_parts(strategy)}, {sum(closeouts.values())} by the stop-time flatten{_parts(closeouts)}; "
        f"open positions left {len(left_open) if isinstance(left_open, list) else 0}",
        f"net PnL {money}, wins {_count(summary.get('wins'))}, losses {_count(summary.get('losses'))}",
        f"next: arbitrage verify {shlex.quote(str(evidence_dir))}",
    ]


def closing_summary(evidence_dir: Path) -> list[str]:
    """The closing summary read from `evidence_dir`'s chain summary, or a line saying why it cannot be."""
    path = evidence_dir / names.CHAIN_SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [
            f"no closing summary: {path} unreadable ({exc})",
            f"next: arbitrage verify {shlex.quote(str(evidence_dir))}",
        ]
    if not isinstance(summary, Mapping):
        return [f"no closing summary: {path} is not a JSON object"]
    return summary_lines(summary, evidence_dir)
