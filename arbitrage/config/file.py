"""Reading the YAML config file strictly: a small regular UTF-8 text file with unique keys.

The file is checked with `stat` before it is opened, so a FIFO or a device never blocks the
engine, and it is opened non-blocking in case it was swapped after the check. Duplicate keys,
at any depth, are errors instead of a silent "last one wins"; anchors and aliases are refused
so that a small file cannot expand into a huge tree.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

MAX_CONFIG_BYTES = 1_048_576


class ConfigFileError(Exception):
    """The config file cannot be used; the message is one line naming the path and the cause."""


def _kind(mode: int) -> str | None:
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    for test, name in kinds.items():
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check_regular(path: Path, mode: int, size: int) -> None:
    kind = _kind(mode)
    if kind is not None:
        raise ConfigFileError(f"config error: {path}: is {kind}, expected a regular YAML file")
    if size > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            f"config error: {path}: {size} bytes, expected at most {MAX_CONFIG_BYTES} bytes (1 MB)"
        )


def _read_bytes(path: Path) -> bytes:
    try:
        _check_regular(path, *_mode_and_size(os.stat(path)))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise ConfigFileError(f"config error: {path}: file not found") from None
    except OSError as exc:
        raise ConfigFileError(f"config error: {path}: cannot read ({exc.strerror})") from None
    try:
        _check_regular(path, *_mode_and_size(os.fstat(fd)))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(f"config error: {path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigFileError(f"config error: {path}: grew past {MAX_CONFIG_BYTES} bytes while being read")
    return data


def _mode_and_size(info: os.stat_result) -> tuple[int, int]:
    return info.st_mode, info.st_size


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise ConfigFileError(
            f"config error: {path}: binary content (NUL byte at offset {offset}), expected YAML text"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(
            f"config error: {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


@functools.cache
def _strict_loader() -> type[yaml.SafeLoader]:
    """The loader class, built on first use so that importing this module loads no YAML parser."""
    import yaml

    class _StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses duplicate mapping keys and anchors/aliases."""

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.MarkedYAMLError(
                    problem="anchors and aliases are not supported", problem_mark=event.start_mark
                )
            node: yaml.Node | None = super().compose_node(parent, index)
            return node

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[object] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    continue
                if key in seen:
                    raise yaml.MarkedYAMLError(
                        problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
                    )
                seen.add(key)
            mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return mapping

    return _StrictLoader


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's top-level mapping, or a `ConfigFileError` naming the path and what is wrong."""
    import yaml

    text = _decode(path, _read_bytes(path))
    try:
        data = yaml.load(text, Loader=_strict_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigFileError(f"config error: {path}: broken YAML{where}: {problem}") from None
    if data is None:
        raise ConfigFileError(f"config error: {path}: file is empty, expected a YAML mapping of settings")
    if not isinstance(data, dict):
        raise ConfigFileError(f"config error: {path}: top level is {type(data).__name__}, expected a mapping")
    return data
