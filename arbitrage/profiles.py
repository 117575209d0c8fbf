"""D98 §2's ramp-up phases as run profiles: `arbitrage run --profile live-phase1` and its paper twin.

A profile is a set of config values applied as if given on the command line: the phase's duration,
its per-trade notional (the cap a live run also holds to `LIVE_MAX_NOTIONAL_USD`: the smaller wins),
its universe and its mode. The run records the profile in `run.profile`, so `arbitrage verify` judges
the phase's checks (`evidence.ramp_checks`). A live profile arms nothing: the run still needs
`LIVE_ARM_ACK`, a fresh `LIVE_ARM_AT` and the rest of the live arming.

Precedence: an explicit flag beats the profile (`--duration 90s` shortens a phase for a rehearsal),
and the profile beats the env and the config file. Two flags are refused alongside a profile rather
than obeyed: a `--mode` other than the profile's (a live phase rehearsed in paper is the paper twin),
and `--ticks` (a phase is bounded by wall time, its checks count seconds from the start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from arbitrage.config import ConfigError, LoadedConfig, ProfileName, load

PROFILE_KEY: Final = "run.profile"
PROFILE_FLAG: Final = "--profile"


@dataclass(frozen=True)
class Profile:
    """One ramp-up phase in one mode: what it sets, as config keys."""

    name: ProfileName
    mode: Literal["paper", "live"]
    phase: int
    duration_sec: float
    notional_usd: float
    universe: Literal["top10", "top20", "top50"]

    def settings(self) -> dict[str, object]:
        """The config keys the profile sets, with their values."""
        return {
            "run.mode": self.mode,
            "run.duration_sec": self.duration_sec,
            "strategy.order_notional_usd": self.notional_usd,
            "symbols.universe": self.universe,
        }

    def describe(self) -> str:
        """One line for help and logs."""
        return (
            f"{self.name}: {self.mode}, {self.duration_sec / 60:g} min, "
            f"${self.notional_usd:g} per trade, {self.universe}"
        )


PROFILES: Final[Mapping[str, Profile]] = {
    p.name: p
    for p in (
        Profile("live-phase1", "live", 1, 300.0, 50.0, "top10"),
        Profile("live-phase2", "live", 2, 1800.0, 100.0, "top20"),
        Profile("live-phase3", "live", 3, 3600.0, 500.0, "top50"),
        Profile("paper-phase1", "paper", 1, 300.0, 50.0, "top10"),
        Profile("paper-phase2", "paper", 2, 1800.0, 100.0, "top20"),
        Profile("paper-phase3", "paper", 3, 3600.0, 500.0, "top50"),
    )
}
"""Every profile by name (D98 §2.1-2.3: 5 min, $50, top10; 30 min, $100, top20; 1 h, $500, top50);
the names are exactly `arbitrage.config.ProfileName`."""

PROFILE_NAMES: Final[tuple[str, ...]] = get_args(ProfileName)


def _refusals(profile: Profile, loaded: LoadedConfig, cli: Mapping[str, object]) -> str | None:
    """The operator's line when a setting contradicts the profile, else None."""
    chosen = f"{PROFILE_FLAG} {profile.name}"
    mode = cli.get("run.mode")
    if mode is not None and mode != profile.mode:
        twin = f"{'paper' if profile.mode == 'live' else 'live'}-phase{profile.phase}"
        return (
            f"config error: --mode {mode} (command line) contradicts {chosen}, which runs {profile.mode}:"
            f" drop --mode, or use --profile {twin}"
        )
    if loaded.config.run.ticks is not None:
        return (
            f"config error: run.ticks = {loaded.config.run.ticks} ({loaded.origin('run.ticks')}) cannot"
            f" bound a {chosen} run: a phase is bounded by wall time; shorten it with --duration"
        )
    return None


def load_profiled(
    path: Path | None,
    env: Mapping[str, str],
    cli: Mapping[str, object],
    flags: Mapping[str, str],
) -> LoadedConfig:
    """`arbitrage.config.load`, with the `--profile` in `cli` applied between the env and the flags.

    Raises ConfigError for a profile set outside the command line, a contradicting `--mode` and a
    tick bound; see the module docstring.
    """
    first = load(path, env, cli, flags)
    name = first.config.run.profile
    if name is None:
        return first
    if cli.get(PROFILE_KEY) is None:
        raise ConfigError(
            f"config error: {PROFILE_KEY} = {name!r} ({first.origin(PROFILE_KEY)}): a ramp-up profile is"
            f" chosen per run with {PROFILE_FLAG}, not in the env or the config file"
        )
    profile = PROFILES[name]
    refused = _refusals(profile, first, cli)
    if refused is not None:
        raise ConfigError(refused)
    merged: dict[str, object] = dict(cli)
    labels = dict(flags)
    for key, value in profile.settings().items():
        if merged.get(key) is None:
            merged[key] = value
            labels[key] = f"{PROFILE_FLAG} {name}"
    return load(path, env, merged, labels)
