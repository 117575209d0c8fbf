"""Where state directories (`logs/evidence`, `.services`) live, decided once and never by accident.

Inside a project (a directory holding `config/v2/config.yml`, searched upward from the current
directory) they sit under its root; elsewhere under the user's data directory. A relative path
given explicitly resolves against what the operator meant: the current directory for a flag or
an env variable, the project (or the file's directory) for the config file. The current directory
alone never decides where state goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

PROJECT_MARKER: Final = Path("config/v2/config.yml")
APP_NAME: Final = "arbitrage"
BUILT_IN: Final = "built-in default"
STATE_KEYS: Final = ("run.evidence_root", "services.data_dir")
"""The config keys that name state directories."""


def find_project_root(start: Path) -> Path | None:
    """The nearest directory at or above `start` that holds `config/v2/config.yml`, or None."""
    current = start.resolve()
    for candidate in (current, *current.parents):
        if (candidate / PROJECT_MARKER).is_file():
            return candidate
    return None


def user_data_dir() -> Path:
    """The per-user data directory (XDG on Linux) used outside any project."""
    import platformdirs

    return platformdirs.user_data_path(APP_NAME)


@dataclass(frozen=True)
class StateBase:
    """The directory that built-in relative state paths hang under, and why it was chosen."""

    path: Path
    kind: str

    @classmethod
    def discover(cls, cwd: Path) -> StateBase:
        """The project root around `cwd`, else the user data directory."""
        root = find_project_root(cwd)
        if root is not None:
            return cls(root, "project root")
        return cls(user_data_dir(), "user data directory")

    def describe(self) -> str:
        return f"{self.kind} {self.path}"


def file_base(file: Path) -> Path:
    """What relative paths in a config file are relative to: its project root, else its directory."""
    resolved = file.resolve()
    marker_depth = len(PROJECT_MARKER.parts)
    if resolved.parts[-marker_depth:] == PROJECT_MARKER.parts:
        return resolved.parents[marker_depth - 1]
    return resolved.parent


@dataclass(frozen=True)
class StatePath:
    """One resolved state directory with the origin of its setting and how it was anchored."""

    key: str
    path: Path
    origin: str
    anchor: str

    def describe(self) -> str:
        """`<path> (<origin>[, <anchor>])` for the lines `run` and `show-config` print."""
        return f"{self.path} ({self.origin}{', ' + self.anchor if self.anchor else ''})"


def resolve_state_path(
    key: str, value: Path, origin: str, *, base: StateBase, file: Path | None, cwd: Path
) -> StatePath:
    """Make a state directory setting absolute according to where it came from."""
    value = value.expanduser()
    if value.is_absolute():
        return StatePath(key, value, origin, "")
    if origin == BUILT_IN:
        return StatePath(key, base.path / value, origin, f"under the {base.describe()}")
    if file is not None and origin == str(file):
        anchor = file_base(file)
        return StatePath(key, anchor / value, origin, f"relative to {anchor}")
    return StatePath(key, cwd.resolve() / value, origin, f"relative to the current directory {cwd.resolve()}")
