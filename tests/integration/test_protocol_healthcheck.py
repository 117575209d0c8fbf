"""The OPS_PROTOCOL §6.2 healthcheck, copied verbatim, judges our heartbeat right under dash and bash.

Operators paste that script into their containers unmodified: it reads `.epoch_time` with jq and
does shell integer arithmetic on it, so `epoch_time` must be whole seconds. The script reads
`/app/logs/evidence/$RUN_ID/heartbeat.jsonl`, so each case links a run directory there under a
unique RUN_ID (and removes the link, and any directory it had to create, afterwards).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbitrage.services import ServiceEndpoints
from evidence import names
from harness.cli_process import start_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SCRIPT = Path(__file__).resolve().parents[1] / "data" / "ops_protocol_healthcheck.sh"
SEED = Path(os.environ.get("OPS_PROTOCOL_SEED", "/work/shared/seeds/OPS_PROTOCOL.md"))
BLOCK_START = b"### 6.2 Healthcheck Command\n```bash\n"
APP_EVIDENCE = Path("/app/logs/evidence")
SHELLS = ("dash", "bash")


def test_the_copy_is_byte_equal_to_the_protocol_block() -> None:
    if not SEED.is_file():
        pytest.skip(f"{SEED} not present (set OPS_PROTOCOL_SEED); the copy is still run below")
    seed = SEED.read_bytes()
    start = seed.index(BLOCK_START) + len(BLOCK_START)
    assert SCRIPT.read_bytes() == seed[start : seed.index(b"```", start)]


@pytest.fixture(scope="module")
def app_evidence() -> Iterator[Path]:
    """`/app/logs/evidence`, created for the module if absent (and removed again if it was, once
    empty: a parallel worker may still hold links in it, and makes it again when it needs it)."""
    created = [p for p in (APP_EVIDENCE, *APP_EVIDENCE.parents) if not p.exists()]
    try:
        APP_EVIDENCE.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        pytest.skip(f"cannot create {APP_EVIDENCE}, where the protocol's script reads the heartbeat")
    yield APP_EVIDENCE
    for directory in sorted(created, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()


@pytest.fixture
def link(app_evidence: Path) -> Iterator[list[Path]]:
    links: list[Path] = []
    yield links
    for path in links:
        path.unlink(missing_ok=True)


def run_script(shell: str, run_dir: Path, links: list[Path]) -> subprocess.CompletedProcess[str]:
    """The verbatim script under `shell`, with RUN_ID naming a link to `run_dir`."""
    found = shutil.which(shell)
    assert found is not None, f"{shell} is not installed (apt-get install {shell})"
    run_id = f"hc_{uuid.uuid4().hex[:12]}"
    target = APP_EVIDENCE / run_id
    for attempt in range(3):
        APP_EVIDENCE.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(run_dir)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    links.append(target)
    return subprocess.run(
        [found, str(SCRIPT)], capture_output=True, text=True, timeout=30,
        env={"PATH": os.environ["PATH"], "RUN_ID": run_id},
    )  # fmt: skip


def gap_in(output: str) -> int:
    match = re.fullmatch(r"PASS: heartbeat fresh \(gap=(\d+)s\)\n", output)
    assert match is not None, output
    return int(match.group(1))


@pytest.fixture(scope="module")
def live_run(server: ServiceEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real engine, running, with at least two heartbeat lines written; stopped by SIGTERM after."""
    root = tmp_path_factory.mktemp("protocol")
    engine: subprocess.Popen[str] = start_cli(
        "run", "--duration", "120s", "--heartbeat-interval", "1",
        "--postgres-dsn", server.postgres_dsn, "--redis-url", server.redis_url,
        "--evidence-root", str(root / "evidence"),
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert engine.stdout is not None
        line = engine.stdout.readline()
        while line and not line.startswith("evidence: "):
            line = engine.stdout.readline()
        assert line.startswith("evidence: "), "the engine never announced its evidence directory"
        run_dir = Path(line.strip().removeprefix("evidence: "))
        deadline = time.monotonic() + 60
        heartbeat = run_dir / names.HEARTBEAT
        while not (heartbeat.is_file() and heartbeat.read_bytes().count(b"\n") >= 2):
            assert time.monotonic() < deadline, "no two heartbeat lines within 60 s"
            assert engine.poll() is None, f"engine exited {engine.returncode}"
            time.sleep(0.1)
        yield run_dir
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=60)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_live_run_passes(shell: str, live_run: Path, link: list[Path]) -> None:
    last = json.loads((live_run / names.HEARTBEAT).read_text().splitlines()[-1])
    assert isinstance(last["epoch_time"], int) and last["epoch_time"] == int(last["epoch_time_precise"])
    done = run_script(shell, live_run, link)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 0 <= gap_in(done.stdout) <= 10


def _copy_with_beats_aged(live_run: Path, destination: Path, age_s: int) -> Path:
    destination.mkdir()
    lines = [json.loads(line) for line in (live_run / names.HEARTBEAT).read_text().splitlines()]
    for line in lines:
        line["epoch_time"] -= age_s
        line["epoch_time_precise"] -= age_s
    (destination / names.HEARTBEAT).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return destination


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stale_heartbeat_fails(shell: str, live_run: Path, link: list[Path], tmp_path: Path) -> None:
    stale = _copy_with_beats_aged(live_run, tmp_path / "stale", 600)
    done = run_script(shell, stale, link)
    assert done.returncode == 1, done.stdout + done.stderr
    match = re.fullmatch(r"FAIL: heartbeat stale \(gap=(\d+)s > 65s\)\n", done.stdout)
    assert match is not None and 600 <= int(match.group(1)) <= 700, done.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_a_missing_heartbeat_fails(shell: str, link: list[Path], tmp_path: Path) -> None:
    done = run_script(shell, tmp_path, link)
    assert (done.returncode, done.stdout) == (1, "FAIL: heartbeat.jsonl not found\n")


@pytest.mark.parametrize("shell", SHELLS)
def test_a_fractional_epoch_time_is_what_breaks_the_script(
    shell: str, live_run: Path, link: list[Path], tmp_path: Path
) -> None:
    """The reason epoch_time is whole seconds: the old fractional form fools or breaks the script."""
    old = _copy_with_beats_aged(live_run, tmp_path / "old", 3600)
    lines = [json.loads(line) for line in (old / names.HEARTBEAT).read_text().splitlines()]
    lines[-1]["epoch_time"] = lines[-1].pop("epoch_time_precise")
    (old / names.HEARTBEAT).write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = run_script(shell, old, link)
    assert not (done.returncode == 1 and done.stdout.startswith("FAIL: heartbeat stale")), (
        "the protocol's script judged a fractional epoch_time correctly; the whole-seconds rule may be moot"
    )
