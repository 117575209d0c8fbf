"""The doctor gate: is this checkout and machine fit to run the engine and its tests at all?

Run as `python -m gates.doctor` (or `nox -s doctor`). It prints one ok/warn/fail row per check
and exits 1 when any check fails, so that a broken environment is named in seconds instead of
surfacing as a confusing test failure minutes later.
"""

from __future__ import annotations

import compileall
import contextlib
import importlib
import io
import os
import pkgutil
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

Status = Literal["ok", "warn", "fail"]

ROOT: Final = Path(__file__).resolve().parents[1]
PACKAGES: Final = ("arbitrage", "evidence", "harness", "gates")
COMPILED_DIRS: Final = (*PACKAGES, "tests")
SERVICE_TIMEOUT_SECONDS: Final = 3
SKEW_WARN_SECONDS: Final = 1.0
DISK_WARN_BYTES: Final = 1 << 30
DISK_FAIL_BYTES: Final = 100 << 20


@dataclass(frozen=True)
class Check:
    """One row of the doctor's report."""

    name: str
    status: Status
    detail: str


def check_compileall() -> Check:
    """Every source file in the packages and tests compiles."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        results = [compileall.compile_dir(ROOT / d, quiet=1) for d in COMPILED_DIRS if (ROOT / d).is_dir()]
    if all(results):
        return Check("compileall", "ok", f"{', '.join(COMPILED_DIRS)} compile")
    errors = [line for line in out.getvalue().splitlines() if line.strip()]
    return Check("compileall", "fail", " | ".join(errors[:3]) or "compile errors")


def _modules(package: str) -> Iterator[str]:
    module = importlib.import_module(package)
    yield package
    for info in pkgutil.walk_packages(module.__path__, f"{package}."):
        if not info.name.endswith(".__main__"):
            yield info.name


def check_imports() -> Check:
    """Every module of every package imports: no missing dependency, no import-time crash."""
    failures: list[str] = []
    count = 0
    for package in PACKAGES:
        try:
            for name in _modules(package):
                count += 1
                try:
                    importlib.import_module(name)
                except Exception as exc:
                    failures.append(f"{name}: {type(exc).__name__}: {exc}")
        except Exception as exc:
            failures.append(f"{package}: {type(exc).__name__}: {exc}")
    if failures:
        return Check(
            "imports",
            "fail",
            "; ".join(failures[:3]) + (f" (+{len(failures) - 3})" if len(failures) > 3 else ""),
        )
    return Check("imports", "ok", f"{count} modules import")


def check_config() -> Check:
    """The default configuration (file, then environment) validates."""
    from arbitrage.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
    from arbitrage.sources import universe

    try:
        config = load_config()
        symbols = universe(config)
    except ConfigError as exc:
        return Check("config", "fail", str(exc))
    source = DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else "built-in defaults"
    return Check("config", "ok", f"{source} valid ({config.run.phase}, {len(symbols)} symbols)")


def check_schemas() -> Check:
    """Every evidence schema is itself a valid draft 2020-12 JSON Schema."""
    from evidence.schema import SCHEMA_FILES, check_schemas

    problems = check_schemas()
    if problems:
        return Check("schemas", "fail", "; ".join(problems[:3]))
    return Check("schemas", "ok", f"{len(SCHEMA_FILES)} evidence schemas valid")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ping_postgres(dsn: str, where: str) -> list[Check]:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=SERVICE_TIMEOUT_SECONDS) as conn:
            before = time.time()
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8, version()").fetchone()
            after = time.time()
    except psycopg.Error as exc:
        return [
            Check("postgres", "fail", f"{where}: {_first_line(exc)}"),
            Check("clock skew", "warn", "not measured: PostgreSQL unreachable"),
        ]
    server_epoch, version = row if row is not None else (before, "?")
    skew = float(server_epoch) - (before + after) / 2
    status: Status = "warn" if abs(skew) > SKEW_WARN_SECONDS else "ok"
    return [
        Check("postgres", "ok", f"{where}: {str(version).split(' on ')[0]}"),
        Check("clock skew", status, f"{skew:+.3f}s vs PostgreSQL (warn above {SKEW_WARN_SECONDS:g}s)"),
    ]


def _ping_redis(url: str, where: str) -> Check:
    import redis

    client = redis.Redis.from_url(
        url, socket_timeout=SERVICE_TIMEOUT_SECONDS, socket_connect_timeout=SERVICE_TIMEOUT_SECONDS
    )
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except redis.RedisError as exc:
        return Check("redis", "fail", f"{where}: {_first_line(exc)}")
    finally:
        client.close()
    return Check("redis", "ok", f"{where}: redis {version}")


def check_services() -> list[Check]:
    """PostgreSQL and Redis answer (external from POSTGRES_DSN/REDIS_URL, else embedded), and clock skew."""
    from arbitrage.services import EmbeddedServices, ServiceStartError

    services = EmbeddedServices(ROOT / ".services")
    try:
        endpoints = services.resolve(
            os.environ.get("POSTGRES_DSN") or None, os.environ.get("REDIS_URL") or None
        )
        where = {
            kind: "embedded" if kind in endpoints.embedded else "external" for kind in ("postgres", "redis")
        }
        return [
            *_ping_postgres(endpoints.postgres_dsn, where["postgres"]),
            _ping_redis(endpoints.redis_url, where["redis"]),
        ]
    except ServiceStartError as exc:
        return [Check("services", "fail", _first_line(exc))]
    finally:
        services.stop()


def check_disk(path: Path = ROOT) -> Check:
    """Enough free disk for evidence and the embedded databases."""
    free = shutil.disk_usage(path).free
    status: Status = "fail" if free < DISK_FAIL_BYTES else "warn" if free < DISK_WARN_BYTES else "ok"
    return Check(
        "disk free", status, f"{free / (1 << 30):.1f} GB free under {path} (warn < 1 GB, fail < 100 MB)"
    )


CHECKS: Final[tuple[Callable[[], Check | list[Check]], ...]] = (
    check_compileall,
    check_imports,
    check_config,
    check_schemas,
    check_services,
    check_disk,
)


def run(checks: tuple[Callable[[], Check | list[Check]], ...] = CHECKS) -> list[Check]:
    """Run every check, turning an unexpected exception into a failed row instead of a traceback."""
    rows: list[Check] = []
    for check in checks:
        try:
            result = check()
        except Exception as exc:
            result = Check(check.__name__.removeprefix("check_"), "fail", f"{type(exc).__name__}: {exc}")
        rows.extend(result if isinstance(result, list) else [result])
    return rows


def main() -> int:
    """Print the rows and a summary; exit 1 on any fail."""
    started = time.monotonic()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    rows = run()
    for row in rows:
        print(f"{row.status:<5} {row.name:<11} {row.detail}", flush=True)
    tally = {s: sum(r.status == s for r in rows) for s in ("ok", "warn", "fail")}
    print(
        f"doctor: {tally['ok']} ok, {tally['warn']} warn, {tally['fail']} fail "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 1 if tally["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
