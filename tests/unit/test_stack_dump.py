"""SIGQUIT asks the engine process for every thread's stack and changes nothing else."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import os, signal, threading
    from arbitrage import stop_request
    stop_request.install_signal_handlers()
    parked = threading.Event()
    threading.Thread(target=parked.wait, name="parked-worker", daemon=True).start()
    os.kill(os.getpid(), signal.SIGQUIT)
    print("still running", stop_request.PROCESS.is_set())
    """
)


def test_sigquit_prints_every_threads_stack_and_the_process_goes_on() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "still running False\n"
    assert done.stderr.count("(most recent call first)") >= 2, done.stderr
    assert "in wait" in done.stderr, "the parked thread's frame is shown"
