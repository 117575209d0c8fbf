"""What the harness reads from an ``arbitrage run`` argument list, through the engine's own flags.

The engine's ``run`` flags (``arbitrage.cli.add_config_flags``) parse the list, so a phase given as
``--phase X``, ``--phase=X`` or an abbreviation is read as the engine reads it, and the service URLs
(which carry passwords) are redacted wherever they appear.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Final, NoReturn

from arbitrage.cli import add_config_flags, run_flags

DEFAULT_PHASE: Final = "smoke"
"""The engine's built-in phase (``run.phase``)."""
SECRET_FLAGS: Final = frozenset({"--postgres-dsn", "--redis-url"})
"""Flags whose values are never shown."""
REDACTED: Final = "<redacted>"
_SECRET_DESTS: Final = tuple(dest for dest, flag in run_flags().values() if flag in SECRET_FLAGS)


class _Raising(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def parse_run_args(args: Sequence[str]) -> argparse.Namespace | None:
    """The ``run`` flags in ``args`` (anything else ignored); None when the engine would refuse them."""
    parser = _Raising(prog="arbitrage run", add_help=False, exit_on_error=False)
    add_config_flags(parser)
    try:
        namespace, _ = parser.parse_known_args(list(args))
    except (argparse.ArgumentError, ValueError):
        return None
    return namespace


def engine_phase(args: Sequence[str]) -> str:
    """The ``--phase`` in ``args``; the engine's default when none is given or the flags do not parse."""
    namespace = parse_run_args(args)
    phase = None if namespace is None else namespace.phase
    return phase if isinstance(phase, str) else DEFAULT_PHASE


def redact(args: Sequence[str]) -> list[str]:
    """``args`` with every secret flag's value replaced by ``<redacted>``, in any spelling."""
    namespace = parse_run_args(args)
    secrets = [] if namespace is None else [getattr(namespace, dest) for dest in _SECRET_DESTS]
    shown: list[str] = []
    for previous, arg in zip(("", *args), args, strict=False):
        flag = arg.split("=", 1)[0]
        if previous in SECRET_FLAGS:
            arg = REDACTED
        elif flag in SECRET_FLAGS and "=" in arg:
            arg = f"{flag}={REDACTED}"
        for secret in secrets:
            if secret:
                arg = arg.replace(secret, REDACTED)
        shown.append(arg)
    return shown
