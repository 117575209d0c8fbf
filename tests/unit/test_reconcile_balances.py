"""Reconcile's balance check: each asset's change since the run started against the ledger's fills."""

from __future__ import annotations

from typing import Any

import pytest

from arbitrage.reconcile.balances import compare_balances, implied_changes

LEG: dict[str, Any] = {
    "symbol": "XRP", "qty": 100.0, "upbit_qty": 101.0, "upbit_side": "buy", "upbit_vwap_krw": 800.0,
    "upbit_fee_krw": 40.4, "binance_side": "sell", "binance_vwap_usdt": 0.55, "binance_fee_usdt": 0.055,
}  # fmt: skip
START = {"upbit": {"KRW": 1_000_000.0, "XRP": 1000.0}, "binance": {"USDT": 10_000.0, "XRP": 1000.0}}
NOW_AFTER_LEG = {
    "upbit": {"KRW": 1_000_000.0 - 101.0 * 800.0 - 40.4, "XRP": 1101.0},
    "binance": {"USDT": 10_000.0 + 55.0 - 0.055, "XRP": 900.0},
}


def check(venue: str, now: dict[str, float], side_orders: list[dict[str, Any]] | None = None) -> list[str]:
    problems: list[str] = []
    compare_balances(venue, START[venue], now, implied_changes([LEG], side_orders or []), problems)
    return problems


def test_balances_that_moved_by_the_fills_match_on_both_venues() -> None:
    assert check("upbit", NOW_AFTER_LEG["upbit"]) == []
    assert check("binance", NOW_AFTER_LEG["binance"]) == []


def test_the_upbit_coin_is_held_to_upbits_own_quantity_not_binances() -> None:
    now = {**NOW_AFTER_LEG["upbit"], "XRP": 1100.0}
    assert check("upbit", now) == [
        "upbit XRP: balance changed +100.00000000 since the run started, the ledger's fills imply "
        "+101.00000000 (drift -1.00000000, tolerance 0.00000003)"
    ]


def test_a_withdrawal_and_a_new_asset_behind_the_engines_back_are_drifts() -> None:
    now = {**NOW_AFTER_LEG["binance"], "USDT": NOW_AFTER_LEG["binance"]["USDT"] - 5.0, "BTC": 0.01}
    found = check("binance", now)
    assert [line.split(":")[0] for line in found] == ["binance BTC", "binance USDT"], found
    assert "drift -5.00000000" in found[1], found


def test_an_unwound_legs_fill_and_fee_count() -> None:
    unwind = [
        {"venue": "binance", "symbol": "XRP", "side": "buy", "qty": 10.0, "vwap": 0.5, "fee": 0.005},
        {"venue": "binance", "symbol": "XRP", "side": "sell", "qty": 10.0, "vwap": 0.49, "fee": 0.0049},
    ]
    after = NOW_AFTER_LEG["binance"]
    now = {"USDT": after["USDT"] - 5.0 + 4.9 - 0.0049, "XRP": after["XRP"] + 10.0 - 0.01 - 10.0}
    assert check("binance", now, unwind) == []
    assert check("binance", NOW_AFTER_LEG["binance"], unwind) != []


def test_a_binance_buys_fee_comes_out_of_the_coin_not_the_usdt() -> None:
    buy = {**LEG, "binance_side": "buy", "upbit_side": "sell", "upbit_qty": 100.0}
    problems: list[str] = []
    start = START["binance"]
    now = {"USDT": start["USDT"] - 55.0, "XRP": start["XRP"] + 100.0 - 0.1}
    rows = compare_balances("binance", start, now, implied_changes([buy], []), problems)
    assert problems == [], problems
    assert rows["XRP"]["implied"] == pytest.approx(99.9) and rows["USDT"]["implied"] == pytest.approx(-55.0)
