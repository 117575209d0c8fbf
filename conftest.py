"""Root conftest, deliberately thin.

The harness is the ``arbitrage_harness`` pytest plugin (``harness/plugin.py``), loaded through
its ``pytest11`` entry point. This file only marks the repository root, so ``tests.*`` helpers
import the same way under every invocation.
"""
