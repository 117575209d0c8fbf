"""Seeded fault schedules: which faults strike each run, when, and for how long.

A schedule is a pure function of its arguments (`random.Random(seed)` is its only source of
chance), so a seed names a campaign and `--only K` replays run K exactly. Kinds are dealt from a
shuffled deck that is reshuffled when it runs out, so every allowed kind strikes about equally
often. Times are integer centiseconds internally, so every constraint holds exactly after the
conversion to seconds and a plan's printed line is the plan itself.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

from gates.chaos.model import (
    DISK_FAULTS,
    EXCHANGE_FAULTS,
    FAULT_KINDS,
    LIVE_FAULT_KINDS,
    ORDER_FAULTS,
    POSTGRES_FAULTS,
    PROCESS_FAULTS,
    REDIS_FAULTS,
    TERMINAL_FAULTS,
    Clock,
    Fault,
    Mode,
    RunPlan,
    Schedule,
)

FAULT_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "process": PROCESS_FAULTS,
    "pg": POSTGRES_FAULTS,
    "redis": REDIS_FAULTS,
    "exchange": EXCHANGE_FAULTS,
    "disk": DISK_FAULTS,
    "orders": ORDER_FAULTS,
}
"""Group names `--faults` accepts besides single kinds (and `all`); `orders` only in a live campaign."""

SERVER_FAULTS: Final[dict[str, tuple[str, ...]]] = {
    "pg": POSTGRES_FAULTS,
    "redis": REDIS_FAULTS,
    "exchange": (*EXCHANGE_FAULTS, *ORDER_FAULTS),
}
"""The kinds that act on each server: two of one server in one run never overlap in time."""

INSTANT_FAULTS: Final = frozenset({"sigterm", "sigkill", "pg-terminate"})
"""Kinds that act once when struck; their planned duration is zero."""

FIRST_STRIKE_SEC: Final = 1.5
"""No fault strikes before the engine has had this long to start."""
LAST_STRIKE_MARGIN_SEC: Final = 2.0
"""No fault strikes later than this before the planned end of the run."""
MIN_FAULT_SEC: Final = 0.5
MAX_FAULT_SEC: Final = 4.0
MIN_DURATION_SEC: Final = 5.0
"""The shortest run a schedule can place faults in."""
ENGINE_SEEDS: Final = 1_000_000

_TERMINAL_GAP_CS: Final = 25
"""Two strikes of one run are at least this far apart (centiseconds), so their order is certain."""


def server_group(kind: str) -> str | None:
    """The server a kind acts on (`pg`, `redis`, `exchange`), or None."""
    return next((server for server, kinds in SERVER_FAULTS.items() if kind in kinds), None)


def _compatible(first: str, second: str) -> bool:
    """Two kinds may share a run unless they are the same or both end the engine."""
    return first != second and not (first in TERMINAL_FAULTS and second in TERMINAL_FAULTS)


class _Deck:
    """Deals kinds from a seeded shuffle of the allowed kinds, reshuffling when empty."""

    def __init__(self, kinds: Sequence[str], rng: random.Random) -> None:
        self._kinds = list(kinds)
        self._rng = rng
        self._cards: list[str] = []

    def _refill(self) -> None:
        fresh = list(self._kinds)
        self._rng.shuffle(fresh)
        self._cards.extend(fresh)

    def deal(self) -> str:
        if not self._cards:
            self._refill()
        return self._cards.pop(0)

    def deal_compatible(self, first: str) -> str | None:
        """The next card that can share a run with `first`; skipped cards stay on top."""
        if not any(_compatible(first, kind) for kind in self._kinds):
            return None
        while True:
            for position, card in enumerate(self._cards):
                if _compatible(first, card):
                    return self._cards.pop(position)
            self._refill()


def _fault(kind: str, at_cs: int, duration_cs: int) -> Fault:
    return Fault(kind, at_cs / 100, 0.0 if kind in INSTANT_FAULTS else duration_cs / 100)


def _duration_cs(rng: random.Random, limit_cs: int) -> int:
    return rng.randint(round(MIN_FAULT_SEC * 100), min(round(MAX_FAULT_SEC * 100), limit_cs))


def _one_fault(kind: str, rng: random.Random, lo: int, hi: int, end: int) -> tuple[Fault, ...]:
    at = rng.randint(lo, hi)
    return (_fault(kind, at, _duration_cs(rng, end - at)),)


def _two_faults(first: str, second: str, rng: random.Random, lo: int, hi: int, end: int) -> tuple[Fault, ...]:
    if first in TERMINAL_FAULTS:
        first, second = second, first
    same_server = server_group(first) is not None and server_group(first) == server_group(second)
    gap = round(MIN_FAULT_SEC * 100) if same_server else _TERMINAL_GAP_CS
    early, late = sorted((rng.randint(lo, hi - gap), rng.randint(lo, hi - gap)))
    late += gap
    if second not in TERMINAL_FAULTS and rng.random() < 0.5:
        first, second = second, first
    first_limit = min(end - early, late - early) if same_server else end - early
    return (
        _fault(first, early, _duration_cs(rng, first_limit)),
        _fault(second, late, _duration_cs(rng, end - late)),
    )


def build_schedule(
    seed: int,
    runs: int,
    duration_sec: float,
    fault_kinds: Sequence[str] = FAULT_KINDS,
    combo_share: float = 0.5,
) -> Schedule:
    """Plan `runs` runs of `duration_sec` each from `seed` alone.

    Every run gets its own engine seed and one fault, or two for `combo_share` of the runs (when
    the allowed kinds permit two). Strikes fall between 1.5 s after launch and 2 s before the
    planned end, faults last 0.5 to 4 s and never past the end, a terminal fault strikes last, two
    faults of a run differ in kind, and two faults on one server never overlap. Raises ValueError
    (one line) on arguments no schedule can satisfy.
    """
    kinds = tuple(dict.fromkeys(fault_kinds))
    unknown = [kind for kind in kinds if kind not in LIVE_FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kind {unknown[0]!r}" if unknown else "no fault kinds to schedule")
    if runs < 1:
        raise ValueError(f"invalid run count {runs}: expected at least 1")
    if not duration_sec >= MIN_DURATION_SEC:
        raise ValueError(
            f"run duration {duration_sec:g}s is too short for a fault schedule: expected at least "
            f"{MIN_DURATION_SEC:g}s"
        )
    if not 0.0 <= combo_share <= 1.0:
        raise ValueError(f"invalid combination share {combo_share:g}: expected 0 to 1")
    rng = random.Random(seed)
    end = round(duration_sec * 100)
    lo, hi = round(FIRST_STRIKE_SEC * 100), end - round(LAST_STRIKE_MARGIN_SEC * 100)
    combos = set(rng.sample(range(runs), round(runs * combo_share)))
    deck = _Deck(kinds, rng)
    plans = []
    for index in range(runs):
        engine_seed = rng.randrange(ENGINE_SEEDS)
        first = deck.deal()
        second = deck.deal_compatible(first) if index in combos else None
        if second is None:
            faults = _one_fault(first, rng, lo, hi, end)
        else:
            faults = _two_faults(first, second, rng, lo, hi, end)
        plans.append(RunPlan(index, engine_seed, duration_sec, faults))
    return Schedule(seed, duration_sec, kinds, tuple(plans))


def shard(schedule: Schedule, index: int, count: int) -> Schedule:
    """Shard `index` of `count` (1-based, as in `--shard 2/4`): the runs whose index % count == index - 1."""
    if not 1 <= index <= count:
        raise ValueError(f"invalid shard {index}/{count}: expected 1 <= i <= n")
    runs = tuple(plan for plan in schedule.runs if plan.index % count == index - 1)
    return Schedule(schedule.seed, schedule.duration_sec, schedule.fault_kinds, runs)


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` as (i, n), 1 <= i <= n; ValueError (one line) otherwise."""
    head, sep, tail = text.partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        index, count = 0, 0
    if not sep or not 1 <= index <= count:
        raise ValueError(f"invalid shard {text!r}: expected i/n with 1 <= i <= n, e.g. 2/4")
    return index, count


def kinds_of(mode: Mode) -> tuple[str, ...]:
    """Every kind a campaign of `mode` can schedule (`all`): order faults only where orders are sent."""
    return LIVE_FAULT_KINDS if mode == "live" else FAULT_KINDS


def parse_fault_list(text: str, mode: Mode = "paper") -> tuple[str, ...]:
    """Comma-separated kinds and group names as the kinds they name, in `kinds_of(mode)` order."""
    known = kinds_of(mode)
    groups = {name: members for name, members in FAULT_GROUPS.items() if set(members) <= set(known)}
    chosen: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if item == "all":
            chosen.update(known)
        elif item in groups:
            chosen.update(groups[item])
        elif item in known:
            chosen.add(item)
        else:
            raise ValueError(
                f"unknown fault kind {item!r} for a {mode} campaign: expected a comma-separated list of"
                f" groups ({', '.join((*groups, 'all'))}) or kinds ({', '.join(known)})"
            )
    return tuple(kind for kind in known if kind in chosen)


def format_fault_list(kinds: Sequence[str], mode: Mode = "paper") -> str:
    """The shortest `--faults` text for `kinds` (whole groups by name; `all` for every kind)."""
    wanted = set(kinds)
    if wanted >= set(kinds_of(mode)):
        return "all"
    parts: list[str] = []
    for group, members in FAULT_GROUPS.items():
        if wanted >= set(members):
            parts.append(group)
        else:
            parts.extend(kind for kind in members if kind in wanted)
    return ",".join(parts)


def replay_command(
    seed: int, runs: int, duration_sec: float, fault_kinds: Sequence[str], index: int, clock: Clock = "run",
    mode: Mode = "paper",
) -> str:  # fmt: skip
    """The command that replays run `index` of a campaign exactly (the CLI's default clock is `run`)."""
    faults = format_fault_list(fault_kinds, mode)
    faults_arg = "" if faults == "all" else f" --faults {faults}"
    clock_arg = "" if clock == "run" else f" --clock {clock}"
    mode_arg = "" if mode == "paper" else f" --mode {mode}"
    return (
        f"arbitrage chaos --seed {seed} --runs {runs} --duration {duration_sec:g}s{mode_arg}{faults_arg}"
        f"{clock_arg} --only {index}"
    )
