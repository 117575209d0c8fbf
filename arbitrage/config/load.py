"""Loading the engine configuration: the YAML file, then env, then CLI flags; later wins.

Every section forbids unknown keys, so a misspelled key is an error instead of a silently
ignored setting. A bad value becomes one `ConfigError` line naming the key path, the value,
what was expected, and where the value came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from arbitrage.config.app import AppConfig
from arbitrage.config.file import ConfigFileError, read_config_file
from arbitrage.config.state_dirs import (
    BUILT_IN,
    STATE_KEYS,
    StateBase,
    StatePath,
    find_project_root,
    resolve_state_path,
)
from arbitrage.config.strict import clipped, env_key_problem, leaf_problem, shown

DEFAULT_CONFIG_PATH = Path("config/v2/config.yml")
ENV_PREFIX = "ARB_"
ENV_NESTING = "__"


class ConfigError(Exception):
    """A configuration problem, already phrased as the one line the operator sees."""


def _set_path(tree: dict[str, Any], dotted: str, value: object, origin: str, below: str) -> None:
    parts = dotted.split(".")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"config error: {where} = {clipped(child)} ({below}): expected a mapping of settings,"
                f" so {origin} cannot set {dotted}"
            )
        node = child
    node[parts[-1]] = value


def _dotted_leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _dotted_leaves(value, f"{dotted}.")
        else:
            yield dotted


def env_overrides(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Map dotted key paths to (value, origin) from POSTGRES_DSN, REDIS_URL and ARB_SECTION__KEY."""
    found: dict[str, tuple[str, str]] = {}
    if env.get("POSTGRES_DSN"):
        found["services.postgres_dsn"] = (env["POSTGRES_DSN"], "env POSTGRES_DSN")
    if env.get("REDIS_URL"):
        found["services.redis_url"] = (env["REDIS_URL"], "env REDIS_URL")
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in {"ARB_CONFIG"}:
            continue
        dotted = name.removeprefix(ENV_PREFIX).lower().replace(ENV_NESTING, ".")
        found[dotted] = (value, f"env {name}")
    return found


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where each setting came from, for error lines raised after loading."""

    config: AppConfig
    file: Path | None
    origins: Mapping[str, str] = field(default_factory=dict)
    file_keys: frozenset[str] = frozenset()
    state: tuple[StatePath, ...] = ()
    """The state directories made absolute by :func:`with_state_dirs`; empty until then."""

    def origin(self, dotted: str) -> str:
        """The real source of `dotted`: the env variable, the CLI flag, the file, or the defaults.

        A key of a section set from several places names each of them.
        """
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in self.origins:
                return self.origins[prefix]
            if prefix in self.file_keys:
                return str(self.file)
        under = f"{dotted}."
        found = sorted({origin for key, origin in self.origins.items() if key.startswith(under)})
        if any(key.startswith(under) for key in self.file_keys):
            found.append(str(self.file))
        if found:
            return " and ".join(found)
        return BUILT_IN


def _describe(error: Mapping[str, Any], loaded: LoadedConfig) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()))
    origin = loaded.origin(loc)
    value = error.get("input")
    if error.get("type") == "extra_forbidden":
        return (
            f"config error: unknown key {loc!r} = {clipped(value)} ({origin}): not a setting of this engine"
        )
    expected = error.get("msg", "invalid value")
    return f"config error: {loc} = {shown(AppConfig, loc, value)} ({origin}): {expected}"


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_config_file(path)
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None


def load(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, object] | None = None,
    flags: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Build the effective config (YAML file, then env, then CLI flags; later wins) with its origins.

    With no explicit path, `ARB_CONFIG` or the project's `config/v2/config.yml` (searched upward
    from the current directory) is read when it exists; otherwise the built-in defaults apply.
    An explicit path that is missing is an error.
    `flags` names the real command-line flag of each CLI key, for error lines.
    """
    env = os.environ if env is None else env
    explicit = path if path is not None else (Path(env["ARB_CONFIG"]) if env.get("ARB_CONFIG") else None)
    file = explicit
    root = find_project_root(Path.cwd()) if file is None else None
    if root is not None:
        file = root / DEFAULT_CONFIG_PATH
    tree: dict[str, Any] = _read(file) if file is not None else {}
    below = str(file) if file is not None else "built-in default"
    file_keys = frozenset(_dotted_leaves(tree))
    origins: dict[str, str] = {}
    for dotted, (value, origin) in env_overrides(env).items():
        problem = env_key_problem(AppConfig, dotted, value, origin)
        if problem is not None:
            raise ConfigError(problem)
        _set_path(tree, dotted, value, origin, below)
        origins[dotted] = origin
    for dotted, flag in (cli or {}).items():
        if flag is None:
            continue
        origin = f"CLI {(flags or {})[dotted]}" if dotted in (flags or {}) else "command line"
        _set_path(tree, dotted, flag, origin, below)
        origins[dotted] = origin
    draft = LoadedConfig(AppConfig(), file, origins, file_keys)
    problem = leaf_problem(AppConfig, tree, draft.origin)
    if problem is not None:
        raise ConfigError(problem)
    try:
        config = AppConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0], draft)) from None
    return LoadedConfig(config, file, origins, file_keys)


def with_state_dirs(loaded: LoadedConfig, cwd: Path | None = None) -> LoadedConfig:
    """The same config with `run.evidence_root` and `services.data_dir` made absolute.

    Built-in defaults go under the project root around `cwd`, else the user data directory;
    explicit settings resolve as :func:`arbitrage.config.state_dirs.resolve_state_path` says.
    """
    cwd = Path.cwd() if cwd is None else cwd
    base = StateBase.discover(cwd)
    config = loaded.config
    current = {"run.evidence_root": config.run.evidence_root, "services.data_dir": config.services.data_dir}
    state = tuple(
        resolve_state_path(key, current[key], loaded.origin(key), base=base, file=loaded.file, cwd=cwd)
        for key in STATE_KEYS
    )
    paths = {entry.key: entry.path for entry in state}
    config = config.model_copy(
        update={
            "run": config.run.model_copy(update={"evidence_root": paths["run.evidence_root"]}),
            "services": config.services.model_copy(update={"data_dir": paths["services.data_dir"]}),
        }
    )
    return replace(loaded, config=config, state=state)


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, object] | None = None,
    flags: Mapping[str, str] | None = None,
) -> AppConfig:
    """The effective config alone; see `load`."""
    return load(path, env, cli, flags).config
