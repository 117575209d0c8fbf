"""The one way tests and the harness start the `arbitrage` command line: `python -m arbitrage ARGS`
as a subprocess, in an operator's environment.

An operator's environment is this process's, less whatever would configure the command behind the
test's back: the services' variables (`POSTGRES_DSN`, `REDIS_URL`), the venue keys and every
`ARB_*` setting (from a developer's shell, or from another test). The one setting it keeps is the
Redis key prefix: each integration module runs under a prefix of its own, so that no module sees
another's engines. Callers then add what their command needs (services, keys, XDG directories) or
remove more, in one mapping where None removes a variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final, TypeAlias

from arbitrage.ops.live_arm import KEY_VARS

SERVICE_VARS: Final = ("POSTGRES_DSN", "REDIS_URL")
SETTING_PREFIX: Final = "ARB_"
KEY_PREFIX_VAR: Final = "ARB_SERVICES__REDIS_KEY_PREFIX"
"""Every engine command and config load reads its Redis keys under this prefix."""
DEFAULT_TIMEOUT_SEC: Final = 120.0

EnvChanges: TypeAlias = Mapping[str, str | None]
"""Variables to set on top of the operator's environment; a None value removes the variable."""


def cli_command(*args: str) -> list[str]:
    """`python -m arbitrage ARGS` on this interpreter, so the child runs the code under test."""
    return [sys.executable, "-m", "arbitrage", *args]


def inherited(name: str) -> bool:
    """Whether an operator's environment keeps this process's variable `name`."""
    if name in SERVICE_VARS or name in KEY_VARS:
        return False
    return not name.startswith(SETTING_PREFIX) or name == KEY_PREFIX_VAR


def operator_env(changes: EnvChanges | None = None) -> dict[str, str]:
    """This process's environment as an operator's (see the module), then `changes` applied."""
    env = {name: value for name, value in os.environ.items() if inherited(name)}
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_cli(
    *args: str,
    env: EnvChanges | None = None,
    cwd: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT_SEC,
    stdout: int | IO[Any] = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    """`arbitrage ARGS` to its end, as text: stderr captured, stdout captured unless `stdout` says
    where it goes; the exit code is the caller's to check."""
    return subprocess.run(
        cli_command(*args), env=operator_env(env), cwd=cwd, timeout=timeout,
        stdout=stdout, stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip


def start_cli(
    *args: str, env: EnvChanges | None = None, cwd: Path | None = None, **popen: Any
) -> subprocess.Popen[Any]:
    """`arbitrage ARGS` started and left running; `popen` are Popen's own options (pipes, text,
    session), which the caller chooses for how it reads the process."""
    return subprocess.Popen(cli_command(*args), env=operator_env(env), cwd=cwd, **popen)
