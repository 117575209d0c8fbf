"""LIVE arming: the fail-closed decision whether `--mode live` may place real orders (DESIGN §7, D98 §1.2).

Pure: it reads a mapping and a clock, and nothing else. Every value is parsed strictly, with
no fallbacks: a missing, misspelled, malformed, out-of-range, expired or future value refuses,
and the reason is one line that never contains a key.

`LIVE_ARM_AT` may lie up to `CLOCK_SKEW_TOLERANCE_SEC` (5 s) in the future, so that an arm
time written by another host whose clock runs slightly ahead still works; anything later is
refused as a future time, and anything older than `ARM_WINDOW_SEC` (600 s) as expired.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import Field, SecretStr, ValidationError

from arbitrage.config.base import Frozen

ARM_ACK_VALUE = "I_UNDERSTAND_LIVE_RISK"
ARM_WINDOW_SEC = 600
CLOCK_SKEW_TOLERANCE_SEC = 5
NOTIONAL_MIN_USD = Decimal(10)
NOTIONAL_MAX_USD = Decimal(1000)
LIVE_ENV_VALUE = "live"

ACK_VAR = "LIVE_ARM_ACK"
AT_VAR = "LIVE_ARM_AT"
NOTIONAL_VAR = "LIVE_MAX_NOTIONAL_USD"
ENV_VAR = "ARBITRAGE_ENV"
KEY_VARS: tuple[str, ...] = ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY", "BINANCE_API_KEY", "BINANCE_API_SECRET")

_EPOCH_SECONDS = re.compile(r"[1-9][0-9]{0,11}", re.ASCII)
_DECIMAL = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,8})?", re.ASCII)
_SHOWN_CHARS = 40


def _shown(value: str) -> str:
    """A bounded repr of an operator-typed (non-secret) value for the refusal line."""
    return repr(value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "...")


class LiveKeys(Frozen):
    """The four exchange credentials, as SecretStr: their repr, str and JSON dump are masked."""

    upbit_access_key: SecretStr = Field(min_length=1)
    upbit_secret_key: SecretStr = Field(min_length=1)
    binance_api_key: SecretStr = Field(min_length=1)
    binance_api_secret: SecretStr = Field(min_length=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LiveKeys:
        """Load the keys; raises ValueError naming (only) the variables that are missing or blank."""
        missing = [name for name in KEY_VARS if not env.get(name, "").strip()]
        if missing:
            raise ValueError(f"exchange keys missing: {', '.join(missing)}")
        try:
            return cls(**{name.lower(): SecretStr(env[name].strip()) for name in KEY_VARS})
        except ValidationError:
            raise ValueError("exchange keys are invalid") from None


@dataclass(frozen=True)
class ArmDecision:
    """Whether live trading is armed, and if not, the first reason why not.

    `code` is a stable identifier for tests and the event log; `reason` is the operator's line.
    """

    ok: bool
    code: str
    reason: str
    notional_usd: Decimal | None = None
    armed_at: int | None = None
    age_sec: float | None = None
    keys: LiveKeys | None = None

    def to_event(self) -> dict[str, Any]:
        """The event_log payload: everything but the keys."""
        return {
            "ok": self.ok,
            "code": self.code,
            "reason": self.reason,
            "notional_usd": None if self.notional_usd is None else str(self.notional_usd),
            "armed_at": self.armed_at,
            "age_sec": None if self.age_sec is None else round(self.age_sec, 3),
        }


def _refuse(code: str, reason: str, **known: Any) -> ArmDecision:
    return ArmDecision(ok=False, code=code, reason=reason, **known)


def _parse_arm_at(raw: str | None, now: float) -> tuple[int, float] | ArmDecision:
    if raw is None or raw == "":
        return _refuse("ARM_AT_MISSING", f"{AT_VAR} is not set (export {AT_VAR}=$(date +%s))")
    if not _EPOCH_SECONDS.fullmatch(raw):
        return _refuse("ARM_AT_MALFORMED", f"{AT_VAR}={_shown(raw)} is not an integer of unix epoch seconds")
    armed_at = int(raw)
    age = now - armed_at
    if age < -CLOCK_SKEW_TOLERANCE_SEC:
        return _refuse(
            "ARM_AT_FUTURE",
            f"{AT_VAR} is {-age:.0f} s in the future (skew tolerance {CLOCK_SKEW_TOLERANCE_SEC} s)",
            armed_at=armed_at, age_sec=age,
        )  # fmt: skip
    if age > ARM_WINDOW_SEC:
        return _refuse(
            "ARM_AT_EXPIRED",
            f"{AT_VAR} is {age:.0f} s old, the arm window is {ARM_WINDOW_SEC} s: re-arm",
            armed_at=armed_at, age_sec=age,
        )  # fmt: skip
    return armed_at, age


def _parse_notional(raw: str | None) -> Decimal | ArmDecision:
    bounds = f"[{NOTIONAL_MIN_USD}, {NOTIONAL_MAX_USD}]"
    if raw is None or raw == "":
        return _refuse("NOTIONAL_MISSING", f"{NOTIONAL_VAR} is not set (a USD amount in {bounds})")
    if not _DECIMAL.fullmatch(raw):
        return _refuse(
            "NOTIONAL_MALFORMED",
            f"{NOTIONAL_VAR}={_shown(raw)} is not a plain decimal USD amount in {bounds}",
        )
    notional = Decimal(raw)
    if not NOTIONAL_MIN_USD <= notional <= NOTIONAL_MAX_USD:
        return _refuse("NOTIONAL_OUT_OF_RANGE", f"{NOTIONAL_VAR}={raw} is outside {bounds}")
    return notional


def check_arming(env: Mapping[str, str], now: float) -> ArmDecision:
    """Decide whether live mode is armed at `now` (unix seconds); the first failing rule refuses.

    Order: ACK, arm time, notional, ARBITRAGE_ENV, keys. Preflight and the kill switch are
    checked separately, because they need the database.
    """
    if not math.isfinite(now):
        return _refuse("CLOCK_INVALID", f"the system clock reads {now!r}")
    ack = env.get(ACK_VAR)
    if ack is None or ack == "":
        return _refuse("ACK_MISSING", f"{ACK_VAR} is not set (it must be exactly {ARM_ACK_VALUE})")
    if ack != ARM_ACK_VALUE:
        hint = " (case-sensitive)" if ack.strip().upper() == ARM_ACK_VALUE else ""
        return _refuse("ACK_MISMATCH", f"{ACK_VAR}={_shown(ack)} is not exactly {ARM_ACK_VALUE}{hint}")
    arm = _parse_arm_at(env.get(AT_VAR), now)
    if isinstance(arm, ArmDecision):
        return arm
    armed_at, age = arm
    notional = _parse_notional(env.get(NOTIONAL_VAR))
    if isinstance(notional, ArmDecision):
        return _refuse(notional.code, notional.reason, armed_at=armed_at, age_sec=age)
    known: dict[str, Any] = {"armed_at": armed_at, "age_sec": age, "notional_usd": notional}
    mode_env = env.get(ENV_VAR)
    if mode_env != LIVE_ENV_VALUE:
        shown = "not set" if mode_env is None else f"{_shown(mode_env)}"
        return _refuse("ENV_NOT_LIVE", f"{ENV_VAR} is {shown}, expected exactly {LIVE_ENV_VALUE!r}", **known)
    try:
        keys = LiveKeys.from_env(env)
    except ValueError as exc:
        return _refuse("KEYS_MISSING", str(exc), **known)
    return ArmDecision(
        ok=True,
        code="ARMED",
        reason=f"armed {age:.0f} s ago, max notional {notional} USD",
        keys=keys,
        **known,
    )
