"""Gates: `nox -s doctor fast regression` before every change; `smoke`, `longrun` and `lint` beside them.

Dependencies come from pyproject.toml (`.[test]`, `.[dev]`); extra arguments after `--` reach the
underlying command, e.g. `nox -s fast -- -k heartbeat` or `nox -s longrun -- --longrun-minutes 60`.
"""

from __future__ import annotations

import re

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["doctor", "fast", "regression"]
nox.options.stop_on_first_error = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
SMOKE_RUN = ("--phase", "smoke", "--duration", "90s", "--heartbeat-interval", "10")


def _install(session: nox.Session, extra: str | None = None) -> None:
    if extra is not None and extra not in EXTRAS:
        session.error(f"pyproject.toml has no optional dependency group {extra!r}")
    session.install("-e", f".[{extra}]" if extra else ".")


@nox.session
def doctor(session: nox.Session) -> None:
    """Environment fitness: compile, import, config, schemas, PostgreSQL, Redis, clock, disk (< 30 s)."""
    _install(session, "test")
    session.run("python", "-m", "gates.doctor", *session.posargs)


@nox.session
def fast(session: nox.Session) -> None:
    """Every test that is not slow, integration or longrun (< 1 min)."""
    _install(session, "test")
    session.run(
        "pytest",
        "-m",
        "not slow and not integration and not longrun",
        "--timeout=120",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


@nox.session
def regression(session: nox.Session) -> None:
    """Every test except longrun, real services included, on 2 workers (< 10 min; `-- -n 0` for serial)."""
    _install(session, "test")
    session.run(
        "pytest", "-m", "not longrun", "--timeout=300", "-p", "no:cacheprovider", "-n", "2", *session.posargs
    )


@nox.session
def longrun(session: nox.Session) -> None:
    """Long soak runs, e.g. `nox -s longrun -- --longrun-minutes 60`."""
    _install(session, "test")
    session.run("pytest", "-m", "longrun", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def smoke(session: nox.Session) -> None:
    """A real 90 s engine run, then `arbitrage verify` on the evidence it left (GO or fail)."""
    _install(session)
    output = session.run(
        "arbitrage", "run", *SMOKE_RUN, *session.posargs, silent=True, stderr=None, success_codes=[0, 1]
    )
    text = output if isinstance(output, str) else ""
    print(text, end="")
    match = re.search(r"^evidence: (.+)$", text, re.MULTILINE)
    if match is None:
        session.error("the engine printed no 'evidence: <dir>' line: it failed before the run started")
    session.run("arbitrage", "verify", match.group(1).strip())


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict."""
    _install(session, "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", *session.posargs)
