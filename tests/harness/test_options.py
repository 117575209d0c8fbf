"""Options and their ini twins, markers, and the errors that name where a bad value came from."""

from __future__ import annotations

import pytest

from tests.harness.outcomes import run_inner

pytest_plugins = ["pytester"]

SHOW_SETTINGS = """
import json
from harness.options import SETTINGS_KEY

def test_show(request):
    s = request.config.stash[SETTINGS_KEY]
    print("SETTINGS", json.dumps({
        "evidence_root": str(s.evidence_root), "longrun_minutes": s.longrun_minutes,
        "postgres_dsn": s.postgres_dsn, "redis_url": s.redis_url, "engine_args": list(s.engine_args),
    }))
"""


def _settings(result: pytest.RunResult) -> dict[str, object]:
    import json

    for line in result.outlines:
        if "SETTINGS {" in line:
            loaded: dict[str, object] = json.loads(line.split("SETTINGS ", 1)[1])
            return loaded
    raise AssertionError("inner test printed no settings:\n" + result.stdout.str())


def test_every_option_has_an_ini_twin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTGRES_DSN", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    pytester.makeini(
        """
        [pytest]
        evidence_root = from_ini/evidence
        longrun_minutes = 3.5
        postgres_dsn = host=/tmp/pg dbname=ini
        redis_url = redis://localhost:6390/0
        engine_args = --seed=11 "--market=synthetic"
        """
    )
    pytester.makepyfile(SHOW_SETTINGS)
    result = run_inner(pytester, "-s", "--strict-config")
    result.assert_outcomes(passed=1)
    assert _settings(result) == {
        "evidence_root": str(pytester.path / "from_ini" / "evidence"),
        "longrun_minutes": 3.5,
        "postgres_dsn": "host=/tmp/pg dbname=ini",
        "redis_url": "redis://localhost:6390/0",
        "engine_args": ["--seed=11", "--market=synthetic"],
    }


def test_the_command_line_wins_over_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        evidence_root = from_ini
        longrun_minutes = 3.5
        redis_url = redis://localhost:6390/0
        engine_args = --seed=11
        """
    )
    pytester.makepyfile(SHOW_SETTINGS)
    result = run_inner(
        pytester,
        "-s",
        "--evidence-root=cli_root",
        "--longrun-minutes=2",
        "--redis-url=unix:///tmp/r.sock",
        "--engine-arg=--seed=12",
        "--engine-arg=--ticks=5",
    )
    settings = _settings(result)
    assert settings["evidence_root"] == str(pytester.path / "cli_root")
    assert settings["longrun_minutes"] == 2.0
    assert settings["redis_url"] == "unix:///tmp/r.sock"
    assert settings["engine_args"] == ["--seed=11", "--seed=12", "--ticks=5"], "ini first, CLI after"


def test_defaults(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTGRES_DSN", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/0")
    pytester.makepyfile(SHOW_SETTINGS)
    settings = _settings(run_inner(pytester, "-s"))
    assert settings == {
        "evidence_root": str(pytester.path / "logs" / "evidence"),
        "longrun_minutes": None,
        "postgres_dsn": None,
        "redis_url": "redis://from-env:6379/0",
        "engine_args": [],
    }


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--longrun-minutes=abc"],
            None,
            "invalid --longrun-minutes value 'abc' from command line --longrun-minutes: expected a number*",
        ),
        (
            [],
            "longrun_minutes = -1",
            "invalid --longrun-minutes value '-1' from ini option longrun_minutes in *tox.ini: "
            "expected a positive, finite number of minutes",
        ),
        (
            ["--postgres-dsn=not a dsn"],
            None,
            "invalid --postgres-dsn value <redacted> from command line --postgres-dsn: not a libpq DSN*",
        ),
        (
            [],
            "redis_url = http://secret@host",
            "invalid --redis-url value <redacted> from ini option redis_url in *tox.ini: "
            "expected a redis://, rediss:// or unix:// URL",
        ),
        (
            ["--engine-arg=--log-format=text"],
            None,
            "invalid --engine-arg value '--log-format=text' from command line --engine-arg: "
            "the harness sets --log-format itself*",
        ),
        (
            [],
            "engine_args = --seed=3 --postgres-dsn=x",
            "invalid --engine-arg value '--postgres-dsn=x' from ini option engine_args in *tox.ini: *",
        ),
        (
            ["--evidence-root=a_file.txt"],
            None,
            "invalid --evidence-root value 'a_file.txt' from command line --evidence-root: "
            "*a_file.txt exists and is not a directory",
        ),
    ],
)
def test_a_bad_value_names_its_source(
    pytester: pytest.Pytester, args: list[str], ini: str | None, message: str
) -> None:
    if ini is not None:
        pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    pytester.makefile(".txt", a_file="not a directory")
    pytester.makepyfile("def test_never_runs():\n    raise AssertionError('configure must fail first')\n")
    result = run_inner(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "secret" not in result.stderr.str()


def test_markers_are_registered_and_strict(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, "--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.slow:*",
            "@pytest.mark.integration:*",
            "@pytest.mark.longrun(minutes, phase):*",
            "@pytest.mark.allow_log(level, pattern, count=None):*",
        ],
        consecutive=False,
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slow
        @pytest.mark.integration
        def test_known():
            pass

        @pytest.mark.slwo
        def test_typo():
            pass
        """
    )
    result = run_inner(pytester, "--strict-markers")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'slwo' not found in `markers` configuration option*"])
