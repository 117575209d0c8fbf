"""`python -m arbitrage` runs the command line.

The stop handlers are installed before the command line module and its imports load, so that
even the earliest SIGTERM or SIGINT is a stop request (exit 1), never a bare signal death.
SIGQUIT prints every thread's stack to stderr and changes nothing else: what an operator (or the
chaos checker) asks a process that does not exit.
"""

from arbitrage import stop_request

stop_request.install_signal_handlers()

from arbitrage.cli import console  # noqa: E402 (after the handlers, on purpose)

console()
