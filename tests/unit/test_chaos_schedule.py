"""Chaos schedules: a pure function of the seed, balanced over kinds, inside the run's constraints."""

from __future__ import annotations

from collections import Counter

import pytest

from gates.chaos.model import FAULT_KINDS, ORDER_FAULTS, TERMINAL_FAULTS, Schedule
from gates.chaos.schedule import (
    FAULT_GROUPS,
    INSTANT_FAULTS,
    build_schedule,
    format_fault_list,
    parse_fault_list,
    parse_shard,
    replay_command,
    server_group,
    shard,
)


def _cs(seconds: float) -> int:
    return round(seconds * 100)


@pytest.fixture(scope="module")
def big() -> Schedule:
    return build_schedule(1, 300, 10.0)


def test_same_seed_same_schedule_and_different_seeds_differ() -> None:
    assert build_schedule(7, 50, 10.0) == build_schedule(7, 50, 10.0)
    assert build_schedule(7, 50, 10.0).runs != build_schedule(8, 50, 10.0).runs


def test_every_kind_strikes_at_least_15_times_in_300_runs(big: Schedule) -> None:
    counts = Counter(kind for plan in big.runs for kind in plan.kinds())
    assert set(counts) == set(FAULT_KINDS)
    assert min(counts.values()) >= 15, counts.most_common()[-3:]
    assert max(counts.values()) - min(counts.values()) <= 3


def test_combo_share_of_runs_have_two_faults(big: Schedule) -> None:
    sizes = Counter(len(plan.faults) for plan in big.runs)
    assert sizes == {1: 150, 2: 150}
    assert all(len(p.faults) == 1 for p in build_schedule(3, 40, 10.0, combo_share=0.0).runs)


def test_run_constraints_hold_for_many_seeds() -> None:
    for seed in range(40):
        duration = (5.0, 10.0, 60.0)[seed % 3]
        for plan in build_schedule(seed, 60, duration).runs:
            assert plan.duration_sec == duration
            end = _cs(duration)
            kinds = plan.kinds()
            assert len(set(kinds)) == len(kinds)
            for fault in plan.faults:
                assert 150 <= _cs(fault.at_sec) <= end - 200, plan.line()
                assert _cs(fault.at_sec) + _cs(fault.duration_sec) <= end, plan.line()
                if fault.kind in INSTANT_FAULTS:
                    assert fault.duration_sec == 0.0
                else:
                    assert 50 <= _cs(fault.duration_sec) <= 400, plan.line()
            starts = [_cs(f.at_sec) for f in plan.faults]
            assert starts == sorted(starts)
            for position, fault in enumerate(plan.faults):
                if fault.kind in TERMINAL_FAULTS:
                    assert position == len(plan.faults) - 1, plan.line()
                    assert all(_cs(other.at_sec) < starts[position] for other in plan.faults[:position])
            if len(plan.faults) == 2:
                first, second = plan.faults
                if server_group(first.kind) is not None and server_group(first.kind) == server_group(
                    second.kind
                ):
                    assert _cs(first.at_sec) + _cs(first.duration_sec) <= _cs(second.at_sec), plan.line()


def test_same_group_pairs_and_terminal_pairs_occur(big: Schedule) -> None:
    pairs = [p for p in big.runs if len(p.faults) == 2]
    assert any(server_group(p.faults[0].kind) == server_group(p.faults[1].kind) == "pg" for p in pairs)
    assert any(p.faults[1].kind in TERMINAL_FAULTS for p in pairs)


def test_two_terminal_kinds_never_share_a_run() -> None:
    plans = build_schedule(5, 40, 10.0, ("sigterm", "sigkill"), combo_share=1.0).runs
    assert all(len(p.faults) == 1 for p in plans)
    assert Counter(p.kinds()[0] for p in plans) == {"sigterm": 20, "sigkill": 20}


def test_only_k_is_plan_k_and_fault_subset_is_respected() -> None:
    schedule = build_schedule(11, 30, 10.0, parse_fault_list("redis,disk"))
    assert {k for p in schedule.runs for k in p.kinds()} == {*FAULT_GROUPS["redis"], "disk-full"}
    assert [p.index for p in schedule.runs] == list(range(30))
    assert build_schedule(11, 30, 10.0, parse_fault_list("redis,disk")).runs[17] == schedule.runs[17]


def test_shards_partition_the_schedule(big: Schedule) -> None:
    parts = [shard(big, i, 4) for i in range(1, 5)]
    indices = sorted(p.index for part in parts for p in part.runs)
    assert indices == list(range(300))
    assert all(p.index % 4 == 1 for p in parts[1].runs)
    assert {p for part in parts for p in part.runs} == set(big.runs)
    with pytest.raises(ValueError, match="invalid shard 3/2"):
        shard(big, 3, 2)


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["3/2", "0/2", "2", "a/b", "1/0", ""])
def test_bad_shards(text: str) -> None:
    with pytest.raises(ValueError, match="expected i/n with 1 <= i <= n"):
        parse_shard(text)


def test_fault_lists_and_groups_round_trip() -> None:
    assert parse_fault_list("all") == FAULT_KINDS
    assert parse_fault_list("sigkill, pg") == ("sigkill", *FAULT_GROUPS["pg"])
    assert parse_fault_list("exchange-nan,sigterm,sigterm") == ("sigterm", "exchange-nan")
    for text in ("process,redis-kill,disk", "exchange", "pg-freeze,exchange-429"):
        assert parse_fault_list(format_fault_list(parse_fault_list(text))) == parse_fault_list(text)
    assert format_fault_list(FAULT_KINDS) == "all"


def test_unknown_fault_names_itself_and_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        parse_fault_list("pg,bogus")
    message = str(info.value)
    assert "'bogus'" in message and "pg-freeze" in message and "exchange" in message
    assert "\n" not in message


def test_impossible_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="too short"):
        build_schedule(1, 5, 3.0)
    with pytest.raises(ValueError, match="unknown fault kind 'nope'"):
        build_schedule(1, 5, 10.0, ("nope",))
    with pytest.raises(ValueError, match="invalid run count 0"):
        build_schedule(1, 0, 10.0)


def test_replay_command_names_the_whole_campaign() -> None:
    assert replay_command(3, 20, 10.0, FAULT_KINDS, 7) == (
        "arbitrage chaos --seed 3 --runs 20 --duration 10s --only 7"
    )
    assert replay_command(3, 20, 60.0, parse_fault_list("pg,sigterm"), 0) == (
        "arbitrage chaos --seed 3 --runs 20 --duration 60s --faults sigterm,pg --only 0"
    )
    assert replay_command(3, 20, 10.0, FAULT_KINDS, 7, clock="launch") == (
        "arbitrage chaos --seed 3 --runs 20 --duration 10s --clock launch --only 7"
    )


def test_a_live_campaign_adds_the_order_kinds_and_a_paper_one_refuses_them() -> None:
    assert parse_fault_list("all", "live") == (*FAULT_KINDS, *ORDER_FAULTS)
    assert parse_fault_list("orders,sigkill", "live") == ("sigkill", *ORDER_FAULTS)
    assert format_fault_list(parse_fault_list("all", "live"), "live") == "all"
    assert format_fault_list(ORDER_FAULTS, "live") == "orders"
    with pytest.raises(ValueError, match="unknown fault kind 'orders' for a paper campaign"):
        parse_fault_list("orders")
    with pytest.raises(ValueError, match="unknown fault kind 'order-held' for a paper campaign"):
        parse_fault_list("order-held")


def test_order_faults_are_the_exchanges_and_never_overlap_its_other_faults() -> None:
    assert {server_group(kind) for kind in ORDER_FAULTS} == {"exchange"}
    schedule = build_schedule(4, 200, 10.0, parse_fault_list("exchange,orders", "live"))
    pairs = [plan.faults for plan in schedule.runs if len(plan.faults) == 2]
    assert len(pairs) == 100
    for first, second in pairs:
        assert (
            first.at_sec + first.duration_sec <= second.at_sec
            or second.at_sec + second.duration_sec <= first.at_sec
        )


def test_a_live_replay_names_its_mode() -> None:
    assert replay_command(3, 20, 10.0, parse_fault_list("all", "live"), 7, mode="live") == (
        "arbitrage chaos --seed 3 --runs 20 --duration 10s --mode live --only 7"
    )
    assert replay_command(3, 20, 10.0, ORDER_FAULTS, 1, mode="live") == (
        "arbitrage chaos --seed 3 --runs 20 --duration 10s --mode live --faults orders --only 1"
    )
