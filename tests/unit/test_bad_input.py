"""Every kind of bad input to `arbitrage run` is refused before anything starts.

Each case calls the real entry point in-process, with cwd and environment isolated, and checks
the operator's view: the exit code (1, or 2 for a CLI usage error), exactly one stderr line
starting `arbitrage:` that names the key or flag or env variable, the value and the real source,
no traceback, and no evidence directory under the evidence root. Services point at refused
loopback ports, so a case that wrongly got through fails fast on its message instead of starting
anything.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from arbitrage.cli import main
from arbitrage.config.file import MAX_CONFIG_BYTES
from harness.cli_process import inherited

CFG = "{tmp}/config.yml"
ROOT = "{tmp}/evidence"


@dataclass(frozen=True)
class Case:
    """One bad input: what to pass, and what the one stderr line must and must not contain."""

    needles: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    config: str | bytes | None = None
    setup: str | None = None
    code: int = 1
    root_flag: bool = True
    watch: str = ROOT
    absent: tuple[str, ...] = ()


def _yaml(section: str, key: str, value: str) -> str:
    return f"{section}:\n  {key}: {value}\n"


def _root_flag(path: str, message: str, setup: str | None = None, watch: str | None = None) -> Case:
    """`--evidence-root PATH` that cannot be written: the line names the key, the path and why."""
    return Case(
        ("run.evidence_root", path, message), args=("--evidence-root", path), setup=setup,
        root_flag=False, watch=watch or path,
    )  # fmt: skip


VALID = "run:\n  seed: 7\nheartbeat:\n  interval_sec: 30\n"

CASES: dict[str, Case] = {
    # non-finite numbers
    "yaml_nan": Case(
        ("strategy.entry_threshold_pct", "nan", CFG), config=_yaml("strategy", "entry_threshold_pct", ".nan")
    ),
    "yaml_inf_bounded": Case(
        ("heartbeat.interval_sec", "inf", CFG), config=_yaml("heartbeat", "interval_sec", ".inf")
    ),
    "yaml_inf_unbounded": Case(
        ("watchdog.market_data_lag_warn_sec", "inf", CFG),
        config=_yaml("watchdog", "market_data_lag_warn_sec", ".inf"),
    ),
    "yaml_nan_unbounded": Case(
        ("sysmon.warn_rss_mb", "nan", CFG), config=_yaml("sysmon", "warn_rss_mb", ".NaN")
    ),
    "yaml_nan_in_list": Case(("symbols.include", "nan", CFG), config=_yaml("symbols", "include", "[.nan]")),
    "env_nan": Case(
        ("strategy.max_hold_sec", "'nan'", "env ARB_STRATEGY__MAX_HOLD_SEC"),
        env={"ARB_STRATEGY__MAX_HOLD_SEC": "nan"},
    ),
    "env_inf": Case(
        ("guards.max_daily_loss_usd", "'inf'", "env ARB_GUARDS__MAX_DAILY_LOSS_USD"),
        env={"ARB_GUARDS__MAX_DAILY_LOSS_USD": "inf"},
    ),
    "env_minus_infinity": Case(
        ("strategy.entry_threshold_pct", "'-Infinity'", "env ARB_STRATEGY__ENTRY_THRESHOLD_PCT"),
        env={"ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "-Infinity"},
    ),
    "env_overflow_to_inf": Case(
        ("watchdog.loop_latency_warn_ms", "'1e999'", "env ARB_WATCHDOG__LOOP_LATENCY_WARN_MS"),
        env={"ARB_WATCHDOG__LOOP_LATENCY_WARN_MS": "1e999"},
    ),
    "cli_heartbeat_inf": Case(
        ("--heartbeat-interval", "'inf'", "finite"), args=("--heartbeat-interval", "inf"), code=2
    ),
    "cli_heartbeat_nan": Case(
        ("--heartbeat-interval", "'nan'", "finite"), args=("--heartbeat-interval", "nan"), code=2
    ),
    "cli_duration_nan": Case(("--duration", "'nan'"), args=("--duration", "nan"), code=2),
    "cli_profile_unknown": Case(("--profile", "'live-phase4'"), args=("--profile", "live-phase4"), code=2),
    "cli_profile_mode": Case(
        ("--mode paper", "--profile live-phase1", "paper-phase1"),
        args=("--profile", "live-phase1", "--mode", "paper"),
    ),
    "cli_profile_ticks": Case(
        ("run.ticks", "5", "CLI --ticks", "--profile paper-phase2"),
        args=("--profile", "paper-phase2", "--ticks", "5"),
    ),
    "env_profile": Case(
        ("run.profile", "'paper-phase1'", "env ARB_RUN__PROFILE", "--profile"),
        env={"ARB_RUN__PROFILE": "paper-phase1"},
    ),
    "env_profile_ticks": Case(
        ("run.ticks", "9", "env ARB_RUN__TICKS", "--profile live-phase1"),
        args=("--profile", "live-phase1"),
        env={"ARB_RUN__TICKS": "9"},
    ),
    "cli_duration_inf": Case(("--duration", "'inf'"), args=("--duration", "inf"), code=2),
    "cli_seed_inf": Case(("--seed", "'inf'"), args=("--seed", "inf"), code=2),
    # booleans where numbers belong
    "yaml_seed_true": Case(("run.seed", "True", CFG, "boolean"), config=_yaml("run", "seed", "true")),
    "yaml_interval_yes": Case(
        ("heartbeat.interval_sec", "True", CFG, "boolean"), config=_yaml("heartbeat", "interval_sec", "yes")
    ),
    "yaml_ticks_false": Case(("run.ticks", "False", CFG, "boolean"), config=_yaml("run", "ticks", "false")),
    "yaml_port_on": Case(("metrics.port", "True", CFG, "boolean"), config=_yaml("metrics", "port", "on")),
    "yaml_nested_fee_no": Case(
        ("strategy.fees_pct.upbit", "False", CFG, "boolean"), config="strategy:\n  fees_pct:\n    upbit: no\n"
    ),
    "env_seed_true": Case(("run.seed", "'true'", "env ARB_RUN__SEED"), env={"ARB_RUN__SEED": "true"}),
    # duplicate keys, at every depth
    "dup_top_level": Case(
        ("duplicate key 'run'", "line 3", CFG), config="run:\n  seed: 1\nrun:\n  seed: 2\n"
    ),
    "dup_in_section": Case(("duplicate key 'seed'", "line 3", CFG), config="run:\n  seed: 1\n  seed: 2\n"),
    "dup_nested": Case(
        ("duplicate key 'upbit'", "line 4", CFG),
        config="strategy:\n  fees_pct:\n    upbit: 0.1\n    upbit: 0.2\n",
    ),
    "dup_flow_mapping": Case(
        ("duplicate key 'interval_sec'", CFG), config="heartbeat: {interval_sec: 5, interval_sec: 6}\n"
    ),
    "yaml_alias": Case(
        ("anchors and aliases", CFG), config="run:\n  seed: &s 3\nheartbeat:\n  redis_ttl_sec: *s\n"
    ),
    # not a regular text file
    "config_fifo": Case(("is a FIFO", CFG), setup="fifo"),
    "config_directory": Case(("is a directory", "{tmp}/confdir"), setup="directory"),
    "config_char_device": Case(("is a character device", "/dev/null"), setup="dev_null"),
    "config_symlink_to_device": Case(("is a character device", "{tmp}/zero.yml"), setup="symlink_zero"),
    "config_socket": Case(("is a socket", "{tmp}/s.yml"), setup="socket"),
    "config_nul_bytes": Case(("binary content", "NUL byte at offset 5", CFG), config=b"run:\n\x00\x01\x02"),
    "config_not_utf8": Case(("not UTF-8", "0xff", CFG), config=b"run:\n  phase: \xff\xfe\n"),
    "config_over_1mb": Case(
        (f"{MAX_CONFIG_BYTES + 11} bytes", "at most", CFG), config="#" * MAX_CONFIG_BYTES + "\nrun: {}\n#\n"
    ),
    "arb_config_env_fifo": Case(("is a FIFO", CFG), setup="fifo_env"),
    "yaml_huge_unknown_section_is_clipped": Case(
        ("unknown key 'runn'", "...", CFG), config="runn: [" + ", ".join(["12345"] * 50_000) + "]\n"
    ),
    # env variables must name one setting
    "env_names_section_run": Case(
        ("env ARB_RUN", "'1'", "section 'run'"), env={"ARB_RUN": "1"}, config=VALID
    ),
    "env_names_nested_section": Case(
        ("env ARB_STRATEGY__FEES_PCT", "section 'strategy.fees_pct'"), env={"ARB_STRATEGY__FEES_PCT": "0.1"}
    ),
    "env_names_section_empty": Case(
        ("env ARB_HEARTBEAT", "''", "section 'heartbeat'"), env={"ARB_HEARTBEAT": ""}, config=VALID
    ),
    "env_unknown_key": Case(
        ("unknown key 'run.seeed'", "'3'", "env ARB_RUN__SEEED"), env={"ARB_RUN__SEEED": "3"}
    ),
    "env_unknown_top_level": Case(("unknown key 'nope'", "env ARB_NOPE"), env={"ARB_NOPE": "1"}),
    "env_below_a_leaf": Case(
        ("unknown key 'run.seed.x'", "env ARB_RUN__SEED__X"), env={"ARB_RUN__SEED__X": "1"}
    ),
    # values that would only fail later, in PostgreSQL, Redis or the OS
    "yaml_seed_beyond_pg_integer": Case(
        ("run.seed", "100000000000000000000000000", CFG, "2147483647"),
        config=_yaml("run", "seed", "100000000000000000000000000"),
    ),
    "env_seed_beyond_pg_integer": Case(
        ("run.seed", "'2147483648'", "env ARB_RUN__SEED"), env={"ARB_RUN__SEED": "2147483648"}
    ),
    "cli_seed_beyond_pg_integer": Case(
        ("run.seed", "2147483648", "CLI --seed"), args=("--seed", "2147483648")
    ),
    "cli_ticks_beyond_pg_integer": Case(
        ("run.ticks", "2147483648", "CLI --ticks"), args=("--ticks", "2147483648")
    ),
    "yaml_redis_ttl_huge": Case(
        ("heartbeat.redis_ttl_sec", "100000000000000", CFG),
        config=_yaml("heartbeat", "redis_ttl_sec", "100000000000000"),
    ),
    "env_redis_ttl_huge": Case(
        ("heartbeat.redis_ttl_sec", "'1e14'", "env ARB_HEARTBEAT__REDIS_TTL_SEC"),
        env={"ARB_HEARTBEAT__REDIS_TTL_SEC": "1e14"},
    ),
    "yaml_book_age_overflow": Case(
        ("run.book_max_age_sec", "1e308", CFG), config=_yaml("run", "book_max_age_sec", "1e308")
    ),
    "cli_duration_too_long": Case(
        ("run.duration_sec", "3600000000.0", "CLI --duration"), args=("--duration", "1000000h")
    ),
    # messages name the real flag, and never blame the file for an env value
    "cli_metrics_port_names_real_flag": Case(
        ("metrics.port", "70000", "CLI --metrics-port"),
        args=("--metrics-port", "70000"),
        absent=("CLI --port ",),
    ),
    "cli_heartbeat_names_real_flag": Case(
        ("heartbeat.interval_sec", "7200.0", "CLI --heartbeat-interval"),
        args=("--heartbeat-interval", "7200"),
        config=VALID,
        absent=("--interval-sec", CFG),
    ),
    "env_value_not_blamed_on_file": Case(
        ("heartbeat.interval_sec", "'0'", "env ARB_HEARTBEAT__INTERVAL_SEC"),
        env={"ARB_HEARTBEAT__INTERVAL_SEC": "0"},
        config=VALID,
        absent=(CFG,),
    ),
    "env_and_file_both_named_for_a_section_check": Case(
        ("sysmon", "env ARB_SYSMON__WARN_RSS_MB", CFG),
        env={"ARB_SYSMON__WARN_RSS_MB": "900"},
        config=_yaml("sysmon", "max_rss_mb", "500"),
    ),
    # evidence roots that cannot be written
    "root_under_proc": _root_flag("/proc/arbitrage-evidence", "CLI --evidence-root"),
    "root_under_regular_file": _root_flag(
        "{tmp}/plain/evidence", "Not a directory", setup="plain_file", watch="{tmp}/plain"
    ),
    "root_is_regular_file": _root_flag("{tmp}/plain", "not a directory", setup="plain_file"),
    "root_read_only_mount": _root_flag("{tmp}/ro/evidence", "Read-only file system", setup="read_only"),
    "root_from_env": Case(
        ("run.evidence_root", "/proc/arb-env", "env ARB_RUN__EVIDENCE_ROOT"),
        env={"ARB_RUN__EVIDENCE_ROOT": "/proc/arb-env"},
        root_flag=False,
        watch="/proc/arb-env",
    ),
    "services_data_dir_under_proc": Case(
        ("services.data_dir", "/proc/arb-services", "env ARB_SERVICES__DATA_DIR"),
        env={"ARB_SERVICES__DATA_DIR": "/proc/arb-services", "POSTGRES_DSN": "", "REDIS_URL": ""},
    ),
    "services_data_dir_under_file": Case(
        ("services.data_dir", "{tmp}/plain/services", CFG, "Not a directory"),
        setup="plain_file",
        env={"POSTGRES_DSN": ""},
        config=_yaml("services", "data_dir", "{tmp}/plain/services"),
    ),
    "root_from_file": Case(
        ("run.evidence_root", "{tmp}/plain/ev", CFG),
        setup="plain_file",
        config=_yaml("run", "evidence_root", "{tmp}/plain/ev"),
        root_flag=False,
        watch="{tmp}/plain",
    ),
}


@contextlib.contextmanager
def _read_only_mount(target: Path) -> Iterator[None]:
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(target)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


def _prepare(setup: str | None, tmp: Path, env: dict[str, str], stack: contextlib.ExitStack) -> str | None:
    """Build the odd file a case needs; return the `--config` path it implies, if any."""
    config = tmp / "config.yml"
    if setup in ("fifo", "fifo_env"):
        os.mkfifo(config)
        if setup == "fifo_env":
            env["ARB_CONFIG"] = str(config)
            return None
        return str(config)
    if setup == "directory":
        (tmp / "confdir").mkdir()
        return str(tmp / "confdir")
    if setup == "dev_null":
        return "/dev/null"
    if setup == "symlink_zero":
        (tmp / "zero.yml").symlink_to("/dev/zero")
        return str(tmp / "zero.yml")
    if setup == "plain_file":
        (tmp / "plain").write_text("not a directory\n")
        return None
    if setup == "socket":
        sock = stack.enter_context(socket.socket(socket.AF_UNIX))
        sock.bind(str(tmp / "s.yml"))
        return str(tmp / "s.yml")
    if setup == "read_only":
        stack.enter_context(_read_only_mount(tmp / "ro"))
        return None
    assert setup is None, setup
    return None


def _isolate(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    monkeypatch.chdir(tmp)
    for name in list(os.environ):
        if not inherited(name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("POSTGRES_DSN", "postgresql://arb@127.0.0.1:1/none?connect_timeout=1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")


def _exit_code(argv: list[str]) -> int | str | None:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _run_dirs(root: Path) -> list[Path]:
    return sorted(root.iterdir()) if root.is_dir() else []


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_with_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    _isolate(monkeypatch, tmp_path)

    def fill(text: str) -> str:
        return text.replace("{tmp}", str(tmp_path))

    env = {key: fill(value) for key, value in case.env.items()}
    argv = ["run", *(fill(arg) for arg in case.args)]
    with contextlib.ExitStack() as stack:
        config = _prepare(case.setup, tmp_path, env, stack)
        if case.config is not None:
            data = case.config if isinstance(case.config, bytes) else fill(case.config).encode()
            (tmp_path / "config.yml").write_bytes(data)
            config = str(tmp_path / "config.yml")
        if config is not None:
            argv += ["--config", config]
        if case.root_flag:
            argv += ["--evidence-root", fill(ROOT)]
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        code = _exit_code(argv)
        watched = Path(fill(case.watch))
        left = _run_dirs(watched) if watched.is_dir() else []
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == case.code, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("arbitrage:"), lines[0]
    for needle in case.needles:
        assert fill(needle) in lines[0], f"{needle!r} not in {lines[0]!r}"
    for needle in case.absent:
        assert fill(needle) not in lines[0], f"{needle!r} in {lines[0]!r}"
    assert len(lines[0]) < 600, lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert "evidence: " not in captured.out
    assert left == []
    assert not (tmp_path / "logs").exists()
    assert not (tmp_path / "services").exists()


def test_there_are_enough_cases_in_every_category() -> None:
    assert len(CASES) >= 40
    prefixes = ("yaml_", "env_", "cli_", "dup_", "config_", "root_", "services_")
    assert all(any(name.startswith(prefix) for name in CASES) for prefix in prefixes)


def test_a_writable_root_is_probed_and_left_as_found(tmp_path: Path) -> None:
    from arbitrage.evidence_root import unwritable_reason

    root = tmp_path / "a" / "b" / "evidence"
    assert unwritable_reason(root) is None
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    assert unwritable_reason(tmp_path / "kept") is None
    assert list((tmp_path / "kept").iterdir()) == []
