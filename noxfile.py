"""Gates: `nox -s doctor fast regression` before every change; `smoke`, `longrun` and `lint` beside them.

Dependencies come from uv.lock (pyproject.toml locked with `uv lock`; CI refuses a stale lock);
extra arguments after `--` reach the underlying command, e.g. `nox -s fast -- -k heartbeat` or
`nox -s longrun -- --longrun-minutes 60`.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nox
from nox.virtualenv import UV

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["doctor", "fast", "regression"]
nox.options.stop_on_first_error = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
SMOKE_RUN = ("--phase", "smoke", "--duration", "90s", "--heartbeat-interval", "10")
FAST_TESTS = "not slow and not integration and not longrun"
REGRESSION_TESTS = "(slow or integration) and not longrun"
"""What `fast` leaves out, longrun aside: `doctor fast regression` runs every non-longrun test once.

`nox -s regression` alone therefore skips the fast tests; `nox -s regression -- -m "not longrun"`
runs them too (pytest keeps the last `-m`).
"""
GATE_VENV = Path(".nox") / "gate"
"""The one venv `doctor`, `fast` and `regression` share (see `_gate`)."""
DURATIONS_RECORD = "tests/regression_durations.json"
"""Each regression module's seconds in a gate run: the order the modules are handed out in."""


def _pytest(session: nox.Session, *args: str, gate: Path | None = None) -> None:
    """pytest with a private temp root of its own, outside the project tree.

    The embedded PostgreSQL runs as an unprivileged user when the tests run as root, so every
    directory above its data must stay traversable; pytest's shared `/tmp/pytest-of-<user>` is
    reset to 0700 by any other pytest session that starts meanwhile. Inside the project tree,
    tests that need to be outside a git checkout or a pytest config would not be.

    A command a test runs outside any project keeps its state under the user's data directory;
    `XDG_DATA_HOME` points that at the same private root, so a test session never writes to the
    developer's own `~/.local/share/arbitrage`.

    Bytecode is written even where the environment says not to (`PYTHONDONTWRITEBYTECODE`):
    without its cache pytest rewrites every test module's assertions from source in every worker
    (a regression collection took 7.2 s instead of 3.6 s, six times over on 6 workers), and each
    engine subprocess compiles what it imports afresh.
    """
    root = Path(tempfile.mkdtemp(prefix=f"arbitrage-{session.name}-"))
    env = {"XDG_DATA_HOME": str(root / "xdg-data"), "PYTHONDONTWRITEBYTECODE": "", **_gate_env(gate)}
    session.run(
        _program(gate, "pytest"), f"--basetemp={root / 'pytest'}", "-p", "no:cacheprovider", *args,
        *session.posargs, env=env,
    )  # fmt: skip


def _install(session: nox.Session, extra: str | None = None, *, compile_bytecode: bool = True) -> None:
    """The locked dependency set (`uv.lock`) and the project, editable, into the session's venv.

    `--locked` refuses a lock that no longer matches pyproject.toml, so a dependency change that
    was not re-locked (`uv lock`) fails the gate instead of installing something else.

    `compile_bytecode` compiles all of site-packages at install (ccxt alone is 74 MB of source), so
    that parallel workers and engine subprocesses never compile what they import; `lint` does
    without. The gate's own sessions share one venv instead (`_gate`).
    """
    if extra is not None and extra not in EXTRAS:
        session.error(f"pyproject.toml has no optional dependency group {extra!r}")
    venv = session.virtualenv.location
    session.run_install(
        "uv", "sync", "--locked", *([f"--extra={extra}"] if extra else []), f"--python={venv}",
        env={"UV_PROJECT_ENVIRONMENT": venv, "UV_COMPILE_BYTECODE": "1" if compile_bytecode else "0"},
        silent=True,
    )  # fmt: skip


def _gate(session: nox.Session) -> Path:
    """The bin directory of the venv the three gate sessions share, made if need be and synced
    with uv.lock (the `dev` extra, which holds the `test` one).

    Made once and shared, its site-packages is compiled once, when it is made (ccxt alone is 74 MB
    of source), and no later session pays for it again: with a venv each, the doctor's import
    check compiled ccxt into its own (8.1 of its 9.7 s), both fast workers compiled what they
    imported, and the regression venv compiled all of site-packages again (6-11 s).
    """
    venv = GATE_VENV.resolve()
    made = not (venv / "bin" / "python").exists()
    if made:
        session.run_install(UV, "venv", "--quiet", f"--python={sys.executable}", str(venv), external=True)
    session.run_install(
        UV, "sync", "--locked", "--extra=dev", f"--python={venv}",
        env={"UV_PROJECT_ENVIRONMENT": str(venv), "UV_COMPILE_BYTECODE": "1" if made else "0"},
        external=True, silent=True,
    )  # fmt: skip
    return venv / "bin"


def _gate_env(gate: Path | None) -> dict[str, str]:
    """The environment of a command run from the gate's venv (nothing to add outside it)."""
    if gate is None:
        return {}
    return {"PATH": f"{gate}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(gate.parent)}


def _program(gate: Path | None, name: str) -> str:
    return name if gate is None else str(gate / name)


def _ruff(session: nox.Session, gate: Path | None = None) -> None:
    for args in (("check", "."), ("format", "--check", ".")):
        session.run(_program(gate, "ruff"), *args, env=_gate_env(gate))


def _lint(session: nox.Session) -> None:
    _ruff(session)
    session.run("mypy")


@contextlib.contextmanager
def _beside(session: nox.Session, gate: Path, *command: str) -> Iterator[None]:
    """Run `command` from the gate's venv while the body runs; its output follows the body's,
    and it fails the session if it failed (after the body, which may have failed first).

    mypy, single-threaded, took 12-13 s on a fresh clone; beside the fast tests, whose 2 workers
    leave part of the second core idle, `fast` took 47.1 s instead of 43.1 + 11.8 s (2 cores).
    """
    session.log(f"{' '.join(command)} (beside what follows)")
    process = subprocess.Popen(
        [str(gate / command[0]), *command[1:]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **_gate_env(gate)},
    )  # fmt: skip
    try:
        yield
    finally:
        output, _ = process.communicate()
        session.log(f"{' '.join(command)} exited {process.returncode}:")
        print(output, end="", flush=True)
    if process.returncode != 0:
        session.error(f"{' '.join(command)} failed")


@nox.session(venv_backend="none")
def doctor(session: nox.Session) -> None:
    """Environment fitness: compile, import, config, schemas, PostgreSQL, Redis, clock, disk (< 30 s)."""
    gate = _gate(session)
    session.run(_program(gate, "python"), "-m", "gates.doctor", *session.posargs, env=_gate_env(gate))


@nox.session(venv_backend="none")
def fast(session: nox.Session) -> None:
    """Lint (as `lint`; mypy beside the tests), and every test that is not slow, integration or
    longrun, on 2 workers."""
    gate = _gate(session)
    _ruff(session, gate)
    with _beside(session, gate, "mypy"):
        _pytest(session, "-m", FAST_TESTS, "--timeout=120", "-n", "2", gate=gate)


@nox.session(venv_backend="none")
def regression(session: nox.Session) -> None:
    """The slow and integration tests (not longrun), real services included, on 6 workers.

    Six workers on a 2-core machine, because these tests mostly wait on engine runs, signals and
    servers: on 2 workers the whole selection kept the machine at a load of about 1.2 and used
    0.8 of a core. Once the slow tests were cut down to what each proves (838 worker-seconds
    instead of 1,528), 6 workers took about 190-200 s at loads up to about 5, 4 workers about
    230 s. The fast tests are left to `fast`, which runs before it in the gate; `-- -m "not
    longrun"` adds them back, `-- -n 0` runs serially. The 25 slowest tests are listed at the end,
    so a test that grows slow shows in every gate run.

    Whole modules go to the workers, longest first by `tests/regression_durations.json`
    (`harness.durations`), so no worker is left with a long module after the others are done; the
    run names the modules that record no longer fits, and
    `-- --record-durations tests/regression_durations.json` writes it afresh.
    """
    gate = _gate(session)
    _pytest(
        session, "-m", REGRESSION_TESTS, "--timeout=300", "-n", "6", "--durations=25",
        "--dist", "loadscope", "--no-loadscope-reorder", "--order-by-durations", DURATIONS_RECORD,
        gate=gate,
    )  # fmt: skip


@nox.session
def longrun(session: nox.Session) -> None:
    """Long soak runs, e.g. `nox -s longrun -- --longrun-minutes 60`."""
    _install(session, "test")
    _pytest(session, "-m", "longrun")


@nox.session
def smoke(session: nox.Session) -> None:
    """A real 90 s engine run, then `arbitrage verify` on the evidence it left.

    Only GO (exit 0) passes: CONDITIONAL GO (exit 3, only high or medium D77-4 criteria missed) and
    NO-GO (exit 1) both fail the session; verify's last lines say which.
    """
    _install(session)
    output = session.run(
        "arbitrage", "run", *SMOKE_RUN, *session.posargs, silent=True, stderr=None, success_codes=[0, 1]
    )
    text = output if isinstance(output, str) else ""
    print(text, end="")
    match = re.search(r"^evidence: (.+)$", text, re.MULTILINE)
    if match is None:
        session.error("the engine printed no 'evidence: <dir>' line: it failed before the run started")
    session.run("arbitrage", "verify", match.group(1).strip(), success_codes=[0])


@nox.session
def chaos(session: nox.Session) -> None:
    """Seeded fault schedules over real runs, e.g. `nox -s chaos -- --runs 500 --seed 7 --workers 2`."""
    _install(session)
    args = session.posargs or ["--runs", "500"]
    session.run("arbitrage", "chaos", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict over the packages, tests, bench/ and this file."""
    _install(session, "dev", compile_bytecode=False)
    _lint(session)
