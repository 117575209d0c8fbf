"""Engine subprocess records under WARN->FAIL, the D77-4 sequence, the summary and xdist isolation.

Each test runs an inner pytest session that starts its own embedded PostgreSQL and Redis and real
engine subprocesses, so the outcomes are those a user would see.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from psycopg import conninfo

from evidence.names import MONITOR_SUMMARY
from evidence.reader import read_json
from tests.harness.outcomes import outcomes, run_inner

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _service_dir(basetemp: Path) -> Path:
    """Where an inner session whose workers share ``basetemp`` keeps its embedded servers."""
    digest = hashlib.sha256(str(basetemp.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"arb-svc-{digest}"


def outer_services(postgres_server: str, redis_url: str) -> tuple[str, str]:
    """Options that point an inner session at this session's servers, where its own are not the point:
    it still gets a database and a key prefix of its own, and starts no embedded server."""
    return f"--postgres-dsn={postgres_server}", f"--redis-url={redis_url}"


FAKE_ENGINE = r"""
import json, sys

for level, message in [(20, "starting")] + [tuple(x.split(":", 1)) for x in sys.argv[1:]]:
    if level == "raw":
        print(message, file=sys.stderr)
    else:
        name = {"20": "INFO", "30": "WARNING", "40": "ERROR"}.get(str(level), "?")
        print(json.dumps({"created": 1.0, "levelno": int(level), "levelname": name,
                          "logger": "fake.engine", "message": message}), file=sys.stderr)
"""


def test_subprocess_json_records_go_through_the_same_policy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(fake_engine=FAKE_ENGINE)
    pytester.makepyfile(
        test_subprocess="""
        import sys
        import pytest

        def launch(engine, *records):
            run = engine(command=[sys.executable, "fake_engine.py"]).start(list(records))
            assert run.wait(timeout=30) == 0

        def test_info_only(engine):
            launch(engine)

        def test_warning(engine):
            launch(engine, "30:careful: boom")

        @pytest.mark.allow_log("WARNING", "^careful")
        def test_warning_allowed(engine):
            launch(engine, "30:careful: boom")

        @pytest.mark.allow_log("WARNING", "boom", count=1)
        def test_warning_over_count(engine):
            launch(engine, "30:boom one", "30:boom two")

        def test_plain_stderr_line(engine):
            launch(engine, "raw:DeprecationWarning: something old")
        """
    )
    result = run_inner(pytester)
    assert outcomes(result) == {
        "test_info_only": ["PASSED"],
        "test_warning": ["FAILED"],
        "test_warning_allowed": ["PASSED"],
        "test_warning_over_count": ["FAILED"],
        "test_plain_stderr_line": ["FAILED"],
    }
    result.stdout.fnmatch_lines(["*WARNING [[]fake.engine[]] careful: boom (engine pid *)"])
    result.stdout.fnmatch_lines(["*WARNING [[]fake.engine[]] boom two (engine pid *)"])
    result.stdout.fnmatch_lines(
        ["*WARNING [[]engine.stderr[]] DeprecationWarning: something old (engine pid *)"]
    )


ENGINE_ERROR = """
import psycopg
import pytest
from arbitrage.ledger import Ledger

def break_ledger(dsn):
    ledger = Ledger(dsn)
    ledger.open()
    ledger.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE trade_legs ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")

def test_engine_error_fails_the_test(engine, postgres_dsn):
    break_ledger(postgres_dsn)
    run = engine(env={"ARB_WARN_POLICY": "continue"})
    run.start(["--phase", "smoke", "--duration", "60s", "--seed", "7"])
    run.wait(timeout=90)

def test_engine_warning_fails_the_test(engine):
    run = engine(env={"ARB_STRATEGY__PAPER_LEG_FAIL_RATE": "1.0"})
    run.start(["--phase", "smoke", "--ticks", "400", "--seed", "7"])
    assert run.wait(timeout=60) == 1
"""


def test_an_engine_error_aborts_the_run_and_fails_the_test(
    pytester: pytest.Pytester, postgres_server: str, redis_url: str
) -> None:
    pytester.makepyfile(test_engine_error=ENGINE_ERROR)
    result = run_inner(pytester, *outer_services(postgres_server, redis_url))
    assert outcomes(result) == {
        "test_engine_error_fails_the_test": ["FAILED"],
        "test_engine_warning_fails_the_test": ["FAILED"],
    }
    result.stdout.fnmatch_lines(
        [
            "*engine aborted by the monitor: log: ERROR [[]arbitrage.ledger[]] ledger write of leg smoke_*",
            "*Captured warnfail call*",
            "*ERROR [[]arbitrage.ledger[]] ledger write of leg smoke_*/entry failed: *"
            "violates check constraint*(engine pid * run smoke_*)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*WARN->FAIL: * WARNING-or-worse log record(s) during call*",
            "*WARNING [[]arbitrage.trader[]] asymmetric fill on * unwound*(engine pid * run smoke_*)",
        ]
    )
    summaries = [read_json(p) for p in (pytester.path / "logs" / "evidence").glob(f"*/{MONITOR_SUMMARY}")]
    aborted = [s for s in summaries if s["aborted"]]
    assert len(summaries) == 2 and len(aborted) == 1
    assert aborted[0]["abort_reason"].startswith("log: ERROR [arbitrage.ledger] ledger write of leg")
    assert aborted[0]["log_records"]["ERROR"] >= 1


D77_4 = """
import pytest

@pytest.mark.longrun(minutes=20, phase="baseline")
def test_a_baseline(engine, longrun_plan):
    pytest.fail("a soak must not start after a failed smoke run")

def test_smoke(engine):
    run = engine().start(["--phase", "smoke", "--ticks", "50", "--seed", "7"])
    assert run.wait(timeout=60) == 0
    assert run.evidence.chain_summary["closed_trades"] > 999, "smoke verdict NO-GO"
"""


def test_a_failed_smoke_run_skips_the_soaks(
    pytester: pytest.Pytester, postgres_server: str, redis_url: str
) -> None:
    pytester.makepyfile(test_sequence=D77_4)
    result = run_inner(pytester, *outer_services(postgres_server, redis_url))
    assert outcomes(result) == {"test_smoke": ["FAILED"], "test_a_baseline": ["SKIPPED"]}
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *: D77-4 sequence: the smoke run failed earlier in this session: "
            "test_sequence.py::test_smoke (call): *smoke verdict NO-GO*"
        ]
    )


ISOLATED = """
import psycopg
import redis
from psycopg import conninfo

def test_{name}(engine, postgres_dsn, redis_url, redis_key_prefix):
    run = engine().start(["--phase", "smoke", "--ticks", "200", "--seed", "{seed}"])
    assert run.wait(timeout=60) == 0, run.describe()
    with psycopg.connect(postgres_dsn) as conn:
        runs = conn.execute("SELECT DISTINCT run_id FROM trade_legs").fetchall()
    assert runs == [(run.run_id,)], "this module's database holds only its own run"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.smembers(redis_key_prefix + ":runs") == {{run.run_id}}
    print("DB", conninfo.conninfo_to_dict(postgres_dsn)["dbname"], "PREFIX", redis_key_prefix)
"""


def test_xdist_workers_share_servers_but_not_databases(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_one=ISOLATED.format(name="one", seed=7), test_two=ISOLATED.format(name="two", seed=8)
    )
    result = run_inner(pytester, "-n", "2")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    databases = {line.split()[1] for line in result.outlines if line.startswith("DB arb_")}
    assert len(databases) == 2, "each module gets a database of its own"
    result.stdout.fnmatch_lines(
        [
            "*= arbitrage engine runs (2) =*",
            "run id * phase * wallclock * trades * max hb gap * db ok/failed * verdict * evidence",
            "smoke_* smoke * PASS *logs/evidence/smoke_*",
            "smoke_* smoke * PASS *logs/evidence/smoke_*",
        ]
    )
    root = pytester.path / "logs" / "evidence"
    evidence = sorted(path for path in root.iterdir() if not path.name.startswith("."))
    assert len(evidence) == 2
    assert all(json.loads((path / "manifest.json").read_text())["status"] == "ended" for path in evidence)
    service_dir = _service_dir(next(pytester.path.glob("runpytest-*")))
    assert not service_dir.exists(), (
        f"the last worker to leave removes the shared servers' data: {service_dir}"
    )


CONFIGURED = """
import json
from psycopg import conninfo

def test_configured(engine, postgres_server, postgres_dsn, redis_url):
    run = engine().start(["--phase", "smoke", "--ticks", "50"])
    assert run.wait(timeout=60) == 0, run.describe()
    manifest = run.evidence.manifest
    print("RESULT", json.dumps({
        "postgres_server": postgres_server, "redis_url": redis_url, "seed": manifest["seed"],
        "evidence": str(run.evidence_dir.parent), "args": list(run.args[-2:]),
        "host": conninfo.conninfo_to_dict(postgres_dsn).get("host"),
    }))
"""


def test_configured_services_and_engine_args_reach_the_engine(
    pytester: pytest.Pytester, postgres_server: str, redis_url: str
) -> None:
    """External services are used as given (nothing embedded starts); ``--engine-arg`` comes last."""
    pytester.makepyfile(test_configured=CONFIGURED)
    result = run_inner(
        pytester,
        "-s",
        *outer_services(postgres_server, redis_url),
        "--evidence-root=custom_evidence",
        "--engine-arg=--seed=9",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    line = next(line for line in result.outlines if "RESULT {" in line)
    seen = json.loads(line.split("RESULT ", 1)[1])
    assert seen == {
        "postgres_server": postgres_server,
        "redis_url": redis_url,
        "seed": 9,
        "evidence": str(pytester.path / "custom_evidence"),
        "args": ["50", "--seed=9"],
        "host": conninfo.conninfo_to_dict(postgres_server).get("host"),
    }
