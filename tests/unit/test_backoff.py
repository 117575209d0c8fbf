"""The venue back-off policy: exponential from a base, capped, Retry-After first, per venue."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from arbitrage.config import AppConfig, RateLimitConfig
from arbitrage.market.backoff import RateLimits, header, parse_retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limits(clock: Clock, **bounds: float) -> RateLimits:
    return RateLimits(RateLimitConfig(**bounds), clock=clock)


def test_waits_grow_exponentially_from_the_base_up_to_the_cap() -> None:
    config = RateLimitConfig(base_sec=0.5, factor=3.0, max_sec=10.0)
    assert [config.wait_for(n, None) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert config.wait_for(10_000, None) == 10.0


def test_retry_after_takes_precedence_up_to_the_cap() -> None:
    config = RateLimitConfig(base_sec=1.0, max_sec=30.0)
    assert config.wait_for(1, 7.0) == 7.0
    assert config.wait_for(5, 0.25) == 0.25
    assert config.wait_for(1, 600.0) == 30.0


def test_defaults_are_bounded_and_the_section_is_strict() -> None:
    config = AppConfig().rate_limit
    assert (config.base_sec, config.factor, config.max_sec) == (1.0, 2.0, 120.0)
    with pytest.raises(ValidationError, match="base_sec 5 is above max_sec 2"):
        RateLimitConfig(base_sec=5.0, max_sec=2.0)
    with pytest.raises(ValidationError, match="extra"):
        AppConfig.model_validate({"rate_limit": {"base_seconds": 1}})
    with pytest.raises(ValidationError):
        RateLimitConfig(max_sec=0)
    with pytest.raises(ValidationError):
        RateLimitConfig(factor=0.5)
    with pytest.raises(ValidationError, match="frozen"):
        config.base_sec = 3.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("60", 60.0),
        (" 2 ", 2.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Wed, 02 Dec 2026 02:00:30 GMT", 30.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    now_epoch = 1_796_176_800.0  # Wed, 02 Dec 2026 02:00:00 GMT
    assert parse_retry_after(value, now_epoch) == seconds


def test_header_lookup_ignores_case() -> None:
    assert header({"retry-after": "5"}, "Retry-After") == "5"
    assert header({"Retry-After": "7"}, "retry-after") == "7"
    assert header({"Content-Type": "x"}, "Retry-After") is None
    assert header(None, "Retry-After") is None


def test_a_limited_venue_waits_and_the_other_does_not(clock: Clock) -> None:
    state = limits(clock, base_sec=1.0, max_sec=60.0)
    backoff = state.on_limited("upbit", 429, None)
    assert backoff.started and backoff.wait_sec == 1.0
    assert state.wait_left("upbit") == 1.0 and state.wait_left("binance") == 0.0
    assert state.refuse("upbit") == 1.0 and state.refuse("binance") == 0.0
    clock.now += 0.4
    assert state.longest_wait() == pytest.approx(0.6)
    clock.now += 0.6
    assert state.wait_left("upbit") == 0.0 and state.longest_wait() == 0.0
    kpi = state.kpi()
    assert kpi["upbit"] == {
        "hits": 1, "backoffs": 1, "refused_requests": 1, "wait_seconds": 1.0, "wait_left_seconds": 0.0,
        "longest_wait_seconds": 1.0, "last_status": 429, "last_retry_after_sec": None,
    }  # fmt: skip
    assert kpi["binance"]["hits"] == 0 and kpi["binance"]["refused_requests"] == 0


def test_consecutive_limits_double_and_an_answer_resets(clock: Clock) -> None:
    state = limits(clock, base_sec=1.0, max_sec=5.0)
    waits = []
    for _ in range(5):
        waits.append(state.on_limited("binance", 429, None).wait_sec)
        clock.now += state.wait_left("binance")
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    state.on_answer("binance")
    assert state.on_limited("binance", 429, None).wait_sec == 1.0
    assert state.kpi()["binance"]["wait_seconds"] == 17.0
    assert state.kpi()["binance"]["wait_left_seconds"] == 1.0


def test_an_answer_during_the_wait_does_not_reset_it(clock: Clock) -> None:
    state = limits(clock, base_sec=1.0)
    state.on_limited("upbit", 429, None)
    clock.now += state.wait_left("upbit")
    state.on_limited("upbit", 429, None)
    state.on_answer("upbit")
    assert state.wait_left("upbit") == 2.0
    clock.now += 2.0
    assert state.on_limited("upbit", 429, None).wait_sec == 4.0


def test_answers_from_one_round_are_one_step(clock: Clock) -> None:
    state = limits(clock, base_sec=1.0)
    first = state.on_limited("binance", 429, None)
    clock.now += 0.01
    others = [state.on_limited("binance", 429, None) for _ in range(9)]
    assert first.started and not any(b.started for b in others)
    assert state.wait_left("binance") == pytest.approx(1.0)
    kpi = state.kpi()["binance"]
    assert kpi["hits"] == 10 and kpi["backoffs"] == 1
    assert kpi["wait_seconds"] + kpi["wait_left_seconds"] == pytest.approx(1.01)


def test_a_ban_with_retry_after_extends_an_earlier_wait_within_the_cap(clock: Clock) -> None:
    state = limits(clock, base_sec=1.0, max_sec=30.0)
    state.on_limited("binance", 429, 2.0)
    clock.now += 1.0
    banned = state.on_limited("binance", 418, 120.0)
    assert not banned.started and banned.wait_sec == 30.0
    kpi = state.kpi()["binance"]
    assert kpi["last_status"] == 418 and kpi["last_retry_after_sec"] == 120.0
    assert kpi["longest_wait_seconds"] == 30.0
    assert kpi["wait_seconds"] == 1.0 and kpi["wait_left_seconds"] == 30.0
    assert state.last_status("binance") == 418 and state.last_status("upbit") is None
