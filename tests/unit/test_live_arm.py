"""LIVE arming refuses every case that is not exactly right, with one line that never shows a key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arbitrage.ops.live_arm import (
    ARM_ACK_VALUE,
    ARM_WINDOW_SEC,
    CLOCK_SKEW_TOLERANCE_SEC,
    KEY_VARS,
    LiveKeys,
    check_arming,
)

NOW = 1_800_000_000.0
CANARY = {name: f"CANARY-{name}-7f3a9c" for name in KEY_VARS}


def armed_env(**changes: str | None) -> dict[str, str]:
    env = {
        "LIVE_ARM_ACK": ARM_ACK_VALUE,
        "LIVE_ARM_AT": str(int(NOW) - 30),
        "LIVE_MAX_NOTIONAL_USD": "100.0",
        "ARBITRAGE_ENV": "live",
        **CANARY,
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


AT, NOTIONAL, ACK = "LIVE_ARM_AT", "LIVE_MAX_NOTIONAL_USD", "LIVE_ARM_ACK"
FULLWIDTH_DIGITS = "".join(chr(0xFF10 + int(d)) for d in str(int(NOW) - 30))

# case -> (variable, its value or None to remove it, expected code, fragment of the reason)
REFUSALS: dict[str, tuple[str, str | None, str, str]] = {
    "empty ack": (ACK, "", "ACK_MISSING", "LIVE_ARM_ACK is not set"),
    "wrong ack": (ACK, "YES", "ACK_MISMATCH", "'YES' is not exactly I_UNDERSTAND_LIVE_RISK"),
    "lowercase ack": (ACK, ARM_ACK_VALUE.lower(), "ACK_MISMATCH", "(case-sensitive)"),
    "ack with space": (ACK, ARM_ACK_VALUE + " ", "ACK_MISMATCH", "is not exactly"),
    "arm_at missing": (AT, None, "ARM_AT_MISSING", "LIVE_ARM_AT is not set"),
    "arm_at 700 s old": (AT, str(int(NOW) - 700), "ARM_AT_EXPIRED", "700 s old"),
    "arm_at 601 s old": (AT, str(int(NOW) - 601), "ARM_AT_EXPIRED", "arm window is 600 s"),
    "arm_at in the future": (AT, str(int(NOW) + 60), "ARM_AT_FUTURE", "60 s in the future"),
    "arm_at past skew": (AT, str(int(NOW) + CLOCK_SKEW_TOLERANCE_SEC + 1), "ARM_AT_FUTURE", "in the future"),
    "arm_at non-numeric": (AT, "now", "ARM_AT_MALFORMED", "'now' is not an integer"),
    "arm_at float": (AT, f"{NOW - 30:.1f}", "ARM_AT_MALFORMED", "not an integer"),
    "arm_at exponent": (AT, "1.8e9", "ARM_AT_MALFORMED", "not an integer"),
    "arm_at signed": (AT, f"+{int(NOW)}", "ARM_AT_MALFORMED", "not an integer"),
    "arm_at padded": (AT, f" {int(NOW)}", "ARM_AT_MALFORMED", "not an integer"),
    "arm_at underscores": (AT, "1_799_999_990", "ARM_AT_MALFORMED", "not an integer"),
    "arm_at fullwidth digits": (AT, FULLWIDTH_DIGITS, "ARM_AT_MALFORMED", "not an integer"),
    "arm_at negative": (AT, "-5", "ARM_AT_MALFORMED", "not an integer"),
    "notional missing": (NOTIONAL, None, "NOTIONAL_MISSING", "is not set"),
    "notional 5": (NOTIONAL, "5", "NOTIONAL_OUT_OF_RANGE", "=5 is outside [10, 1000]"),
    "notional 9.99": (NOTIONAL, "9.99", "NOTIONAL_OUT_OF_RANGE", "outside [10, 1000]"),
    "notional 1000.01": (NOTIONAL, "1000.01", "NOTIONAL_OUT_OF_RANGE", "outside"),
    "notional 2000": (NOTIONAL, "2000", "NOTIONAL_OUT_OF_RANGE", "=2000 is outside"),
    "notional nan": (NOTIONAL, "nan", "NOTIONAL_MALFORMED", "'nan' is not a plain decimal"),
    "notional NaN": (NOTIONAL, "NaN", "NOTIONAL_MALFORMED", "not a plain decimal"),
    "notional inf": (NOTIONAL, "inf", "NOTIONAL_MALFORMED", "not a plain decimal"),
    "notional exponent": (NOTIONAL, "1e2", "NOTIONAL_MALFORMED", "not a plain decimal"),
    "notional negative": (NOTIONAL, "-100", "NOTIONAL_MALFORMED", "not a plain decimal"),
    "notional garbage": (NOTIONAL, "100USD", "NOTIONAL_MALFORMED", "not a plain decimal"),
    "notional padded": (NOTIONAL, "100 ", "NOTIONAL_MALFORMED", "not a plain decimal"),
    "env unset": ("ARBITRAGE_ENV", None, "ENV_NOT_LIVE", "ARBITRAGE_ENV is not set"),
    "env paper": ("ARBITRAGE_ENV", "paper", "ENV_NOT_LIVE", "'paper', expected exactly 'live'"),
    "env uppercase": ("ARBITRAGE_ENV", "LIVE", "ENV_NOT_LIVE", "'LIVE'"),
    "one key missing": ("BINANCE_API_SECRET", None, "KEYS_MISSING", "missing: BINANCE_API_SECRET"),
    "blank key": ("UPBIT_ACCESS_KEY", "  ", "KEYS_MISSING", "missing: UPBIT_ACCESS_KEY"),
}


def test_nothing_set_refuses_on_the_ack() -> None:
    decision = check_arming({}, NOW)
    assert (decision.ok, decision.code) == (False, "ACK_MISSING")
    assert decision.reason == "LIVE_ARM_ACK is not set (it must be exactly I_UNDERSTAND_LIVE_RISK)"


@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_wrong_case_refuses_with_one_line(case: str) -> None:
    name, value, code, fragment = REFUSALS[case]
    decision = check_arming(armed_env(**{name: value}), NOW)
    assert (decision.ok, decision.code) == (False, code), decision.reason
    assert fragment in decision.reason
    assert "\n" not in decision.reason
    assert decision.keys is None
    for secret in CANARY.values():
        assert secret not in decision.reason
        assert secret not in str(decision.to_event())


@pytest.mark.parametrize(
    ("at_offset", "notional"),
    [(0, "10"), (-ARM_WINDOW_SEC, "1000"), (CLOCK_SKEW_TOLERANCE_SEC, "100.0"), (-1, "999.99999999")],
)
def test_boundaries_inside_the_rules_arm(at_offset: int, notional: str) -> None:
    env = armed_env(LIVE_ARM_AT=str(int(NOW) + at_offset), LIVE_MAX_NOTIONAL_USD=notional)
    decision = check_arming(env, NOW)
    assert decision.ok, decision.reason
    assert (decision.code, decision.notional_usd) == ("ARMED", Decimal(notional))
    assert decision.armed_at == int(NOW) + at_offset


def test_armed_decision_carries_the_keys_as_secrets_only() -> None:
    decision = check_arming(armed_env(), NOW)
    assert decision.ok and decision.keys is not None
    assert decision.keys.binance_api_secret.get_secret_value() == CANARY["BINANCE_API_SECRET"]
    shown = " ".join((repr(decision), str(decision), decision.reason, str(decision.to_event())))
    shown += decision.keys.model_dump_json()
    for secret in CANARY.values():
        assert secret not in shown
    assert decision.to_event() == {
        "ok": True,
        "code": "ARMED",
        "reason": "armed 30 s ago, max notional 100.0 USD",
        "notional_usd": "100.0",
        "armed_at": int(NOW) - 30,
        "age_sec": 30.0,
    }


def test_first_failing_rule_is_reported() -> None:
    env = armed_env(LIVE_ARM_ACK="nope", LIVE_ARM_AT="x", LIVE_MAX_NOTIONAL_USD="nan")
    assert check_arming(env, NOW).code == "ACK_MISMATCH"
    env = armed_env(LIVE_ARM_AT="x", LIVE_MAX_NOTIONAL_USD="nan")
    assert check_arming(env, NOW).code == "ARM_AT_MALFORMED"


@pytest.mark.parametrize("now", [float("nan"), float("inf")])
def test_a_broken_clock_refuses(now: float) -> None:
    assert check_arming(armed_env(), now).code == "CLOCK_INVALID"


def test_long_typed_values_are_cut_in_the_reason() -> None:
    decision = check_arming(armed_env(LIVE_ARM_ACK="A" * 500), NOW)
    assert len(decision.reason) < 160


def test_live_keys_need_all_four_and_reject_unknown_fields() -> None:
    all_four = "UPBIT_ACCESS_KEY, UPBIT_SECRET_KEY, BINANCE_API_KEY, BINANCE_API_SECRET"
    with pytest.raises(ValueError, match=all_four):
        LiveKeys.from_env({})
    keys = LiveKeys.from_env(CANARY)
    assert CANARY["UPBIT_SECRET_KEY"] not in repr(keys)
    with pytest.raises(ValueError, match="extra"):
        LiveKeys.model_validate({**{n.lower(): "k" for n in KEY_VARS}, "extra": "k"})
