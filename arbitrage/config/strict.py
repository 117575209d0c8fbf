"""Checks pydantic's lax mode lets through: they walk the raw settings tree against the models.

Lax validation turns `true` into 1, accepts `nan` and `inf` wherever a float has no bound that
excludes them, and an env variable named after a whole section replaces that section. Each check
here returns the one line to show, or None.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

Origin = Callable[[str], str]


def _members(annotation: object) -> tuple[object, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _section(annotation: object) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def is_numeric(info: FieldInfo) -> bool:
    """Whether the field takes a number (int or float), optionally None."""
    return any(member in (int, float) for member in _members(info.annotation))


def is_secret(info: FieldInfo | None) -> bool:
    """Whether the field holds a secret whose value must never be echoed."""
    return info is not None and any(member is SecretStr for member in _members(info.annotation))


def resolve(model: type[BaseModel], dotted: str) -> FieldInfo | type[BaseModel] | None:
    """The leaf field at `dotted`, the section model when `dotted` names a section, or None if unknown."""
    current: type[BaseModel] = model
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        info = current.model_fields.get(part)
        if info is None:
            return None
        section = _section(info.annotation)
        last = depth == len(parts) - 1
        if section is None:
            return info if last else None
        if last:
            return section
        current = section
    return None


MAX_SHOWN_CHARS = 120


def clipped(value: object) -> str:
    """The repr of a value, cut short so that an error stays one readable line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[: MAX_SHOWN_CHARS - 3]}..."


def shown(model: type[BaseModel], dotted: str, value: object) -> str:
    """How a value appears in an error line: its clipped repr, or `<redacted>` for a secret."""
    found = resolve(model, dotted)
    return "<redacted>" if isinstance(found, FieldInfo) and is_secret(found) else clipped(value)


def env_key_problem(model: type[BaseModel], dotted: str, value: str, origin: str) -> str | None:
    """An env variable must name one setting: not a section, not an unknown key."""
    found = resolve(model, dotted)
    if isinstance(found, FieldInfo):
        return None
    if found is None:
        shown_value = clipped(value)
        return (
            f"config error: unknown key {dotted!r} = {shown_value} ({origin}): not a setting of this engine"
        )
    variable = origin.removeprefix("env ")
    return (
        f"config error: {dotted} = {clipped(value)} ({origin}): names the section {dotted!r}, not a setting;"
        f" set {variable}__<KEY> for one of its keys"
    )


def _leaves(
    model: type[BaseModel], tree: Mapping[str, Any], prefix: str
) -> Iterator[tuple[str, FieldInfo, Any]]:
    for key, value in tree.items():
        info = model.model_fields.get(key) if isinstance(key, str) else None
        if info is None:
            continue
        dotted = f"{prefix}{key}"
        section = _section(info.annotation)
        if section is not None and isinstance(value, Mapping):
            yield from _leaves(section, value, f"{dotted}.")
        elif section is None:
            yield dotted, info, value


def _non_finite(value: object, numeric: bool) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str) and numeric:
        try:
            return not math.isfinite(float(value.strip()))
        except ValueError:
            return False
    return False


def _value_problem(info: FieldInfo, value: object) -> str | None:
    numeric = is_numeric(info)
    if numeric and isinstance(value, bool):
        return "expected a number, got a boolean"
    items = value if isinstance(value, list | tuple) else (value,)
    if any(_non_finite(item, numeric) for item in items):
        return "expected a finite number, got a non-finite one (nan or infinity)"
    return None


def leaf_problem(model: type[BaseModel], tree: Mapping[str, Any], origin: Origin) -> str | None:
    """The first boolean given for a number, or non-finite number, anywhere in the tree."""
    for dotted, info, value in _leaves(model, tree, ""):
        problem = _value_problem(info, value)
        if problem is not None:
            text = "<redacted>" if is_secret(info) else clipped(value)
            return f"config error: {dotted} = {text} ({origin(dotted)}): {problem}"
    return None
