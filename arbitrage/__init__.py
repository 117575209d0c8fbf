"""The arbitrage engine and its operational tools.

`__version__` is the one place the version is written: the build reads it (pyproject's
`[tool.hatch.version]`), and `arbitrage --version` and the metrics' run info print it without
looking the installed distribution up.
"""

__version__ = "0.1.0"
