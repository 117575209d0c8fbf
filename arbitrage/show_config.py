"""`arbitrage show-config`: the configuration a run would use, and where each value came from.

It takes `run`'s flags, so a flag shows up as a source exactly as it would for a run. Secrets are
printed as `<redacted>`; nothing here connects to a service or writes a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arbitrage.cli import OneLineParser
    from arbitrage.config import LoadedConfig

REDACTED = "<redacted>"


@dataclass(frozen=True)
class Setting:
    """One leaf of the resolved config: its value (secrets masked) and its source."""

    key: str
    value: object
    source: str
    origin: str

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "source": self.source, "origin": self.origin}


def source_kind(origin: str, file: str | None) -> str:
    """`default`, `file`, `env` or `flag` for an origin as `LoadedConfig.origin` phrases it."""
    if origin.startswith("env "):
        return "env"
    if origin.startswith("CLI ") or origin == "command line":
        return "flag"
    if file is not None and origin == file:
        return "file"
    return "default"


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def settings(loaded: LoadedConfig) -> list[Setting]:
    """Every setting of the config, in model order, with its source."""
    from arbitrage.config import AppConfig
    from arbitrage.config.strict import is_secret, resolve

    file = None if loaded.file is None else str(loaded.file)
    found: list[Setting] = []
    for key, value in _leaves(loaded.config.model_dump(mode="json")):
        info = resolve(AppConfig, key)
        secret = not isinstance(info, type) and is_secret(info)
        shown = REDACTED if secret and value is not None else value
        origin = loaded.origin(key)
        found.append(Setting(key, shown, source_kind(origin, file), origin))
    return found


def document(loaded: LoadedConfig) -> dict[str, object]:
    """The `--json` document: config file, state directories and every setting."""
    return {
        "config_file": None if loaded.file is None else str(loaded.file),
        "state_dirs": {
            entry.key: {"path": str(entry.path), "origin": entry.origin, "anchor": entry.anchor}
            for entry in loaded.state
        },
        "settings": {setting.key: setting.to_json() for setting in settings(loaded)},
    }


def _text(value: object) -> str:
    return json.dumps(value) if isinstance(value, list | dict | bool) or value is None else str(value)


def render(loaded: LoadedConfig) -> str:
    """The human table: one `key  value  source (origin)` row per setting."""
    rows = settings(loaded)
    key_width = max(len(row.key) for row in rows)
    value_width = min(40, max(len(_text(row.value)) for row in rows))
    lines = [f"config file: {loaded.file if loaded.file is not None else 'none (built-in defaults)'}"]
    lines += [f"state dir: {entry.key} = {entry.describe()}" for entry in loaded.state]
    lines.append("")
    for row in rows:
        detail = row.origin.replace("CLI ", "flag ") if row.source in {"env", "flag"} else row.source
        lines.append(f"{row.key:<{key_width}}  {_text(row.value):<{value_width}}  {detail}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    """Add `arbitrage show-config` to the CLI."""
    from arbitrage.cli import add_config_flags

    show = sub.add_parser(
        "show-config",
        help="print the resolved config and where each value came from (default, file, env, flag)",
        description="Print the config `arbitrage run` would use with the same flags, each value's "
        "source, and where the state directories are. Secrets are masked.",
    )
    show.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_config_flags(show)
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    from arbitrage.cli import config_overrides
    from arbitrage.config import ConfigError, with_state_dirs
    from arbitrage.profiles import load_profiled

    cli, flags = config_overrides(args)
    try:
        loaded = with_state_dirs(load_profiled(args.config, os.environ, cli, flags))
    except ConfigError as exc:
        print(f"arbitrage: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(document(loaded), indent=2))
    else:
        print(render(loaded))
    return 0
