"""WARN -> FAIL: a WARNING-or-worse log record during a test's setup, call or teardown fails it.

OPS_PROTOCOL §3.2 makes a warning a failure for the engine. Engine records (fed by the ``engine``
fixture) are always judged. Applying the rule to every test's in-process records is opt-in
(``--warnfail`` or ini ``warnfail = true``), because the plugin loads in every project that
installs the package and must not change verdicts there unasked. When enabled, records are
caught by the harness's own handler at an explicit WARNING level, never by caplog, and WARNING
stays enabled on every logger while a session runs, so neither ``caplog.set_level`` nor a
logger's own level can hide a record. The handler sits on the root logger and, like caplog's, on
every logger that does not propagate when a phase starts. Engine subprocess records arrive
through :meth:`Collector.feed` and are judged by the same ``allow_log`` rules.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import pytest

LEVEL: Final = logging.WARNING
SECTION: Final = "warnfail"
MARKER: Final = "allow_log"
MARKER_HELP: Final = (
    "allow_log(level, pattern, count=None): let log records of exactly `level` whose message matches "
    "the regex `pattern` (re.search) pass WARN->FAIL, at most `count` of them per test when given."
)


@dataclass(frozen=True)
class LogEvent:
    """One log record as WARN->FAIL judges it, from this process or from an engine subprocess."""

    levelno: int
    levelname: str
    logger: str
    message: str
    origin: str = "in-process"
    created: float = 0.0

    @classmethod
    def from_record(cls, record: logging.LogRecord) -> LogEvent:
        """Capture a record now; the message is rendered at once so later mutation cannot change it."""
        try:
            message = record.getMessage()
        except Exception:
            message = f"{record.msg!r} (message formatting failed: args {record.args!r})"
        return cls(record.levelno, record.levelname, record.name, message, "in-process", record.created)

    @classmethod
    def from_line(cls, line: str, origin: str, run_id: str | None = None) -> LogEvent:
        """Read one stderr line of a subprocess logging JSON objects with ``levelno``.

        The origin names the run the line itself names (``run_id``), else ``run_id``, if either.

        Anything else on stderr bypassed logging: a ``Traceback`` line counts as an ERROR, any
        other line as a WARNING, so unstructured output cannot slip past the policy.
        """
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("run_id"), str):
            run_id = doc["run_id"]
        if run_id:
            origin = f"{origin} run {run_id}"
        if isinstance(doc, dict) and isinstance(doc.get("levelno"), int):
            levelno = int(doc["levelno"])
            message = str(doc.get("message", ""))
            if doc.get("exc_info"):
                message = f"{message}\n{doc['exc_info']}"
            return cls(
                levelno,
                str(doc.get("levelname") or logging.getLevelName(levelno)),
                str(doc.get("logger", "?")),
                message,
                origin,
                float(doc.get("created") or time.time()),
            )
        levelno = logging.ERROR if line.startswith("Traceback") else logging.WARNING
        return cls(levelno, logging.getLevelName(levelno), "engine.stderr", line, origin, time.time())

    def describe(self) -> str:
        """One line for failure reports."""
        return f"{self.levelname} [{self.logger}] {self.message} ({self.origin})"


@dataclass(frozen=True)
class AllowRule:
    """One ``allow_log`` marker: records of exactly ``levelno`` whose message matches ``pattern``."""

    levelno: int
    pattern: re.Pattern[str]
    count: int | None

    def matches(self, event: LogEvent) -> bool:
        return event.levelno == self.levelno and self.pattern.search(event.message) is not None

    def describe(self) -> str:
        limit = "" if self.count is None else f", count={self.count}"
        return f"allow_log({logging.getLevelName(self.levelno)!r}, {self.pattern.pattern!r}{limit})"


def _level(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"level {value!r} is not a logging level")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        found = logging.getLevelNamesMapping().get(value.upper())
        if found is not None:
            return found
    raise ValueError(f"level {value!r} is not a logging level name or number (e.g. 'WARNING', 40)")


def parse_allow_rules(item: pytest.Item) -> tuple[AllowRule, ...]:
    """Read every ``allow_log`` marker on ``item``; a malformed one is a usage error naming the test."""
    rules: list[AllowRule] = []
    for mark in item.iter_markers(MARKER):
        try:
            kwargs = dict(mark.kwargs)
            names = ("level", "pattern", "count")
            if len(mark.args) > len(names) or set(kwargs) - set(names):
                raise ValueError("takes (level, pattern, count=None)")
            kwargs.update(zip(names, mark.args, strict=False))
            if "level" not in kwargs or "pattern" not in kwargs:
                raise ValueError("needs a level and a pattern")
            count = kwargs.get("count")
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                raise ValueError(f"count={count!r} must be a positive integer or None")
            pattern = kwargs["pattern"]
            if not isinstance(pattern, str):
                raise ValueError(f"pattern {pattern!r} must be a string regex")
            rules.append(AllowRule(_level(kwargs["level"]), re.compile(pattern), count))
        except (ValueError, re.error) as exc:
            raise pytest.UsageError(f"invalid @pytest.mark.{MARKER} on {item.nodeid}: {exc}") from None
    return tuple(rules)


@dataclass
class _Budget:
    """A test's rules and how many records each has let through so far (setup, call, teardown)."""

    rules: tuple[AllowRule, ...]
    used: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.used = [0] * len(self.rules)

    def admit(self, event: LogEvent) -> bool:
        for index, rule in enumerate(self.rules):
            if rule.matches(event) and (rule.count is None or self.used[index] < rule.count):
                self.used[index] += 1
                return True
        return False


_STRAY_OUTPUT: Final = "arbitrage_warnfail_stray"
RULES_KEY: Final = pytest.StashKey[tuple[AllowRule, ...]]()
_BUDGET_KEY: Final = pytest.StashKey[_Budget]()


class Collector(logging.Handler):
    """The harness's own handler: keeps every WARNING-or-worse record until a phase ends."""

    def __init__(self, level: int = LEVEL) -> None:
        super().__init__(level)
        self._events: list[LogEvent] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        self.feed(LogEvent.from_record(record))

    def feed(self, event: LogEvent) -> None:
        """Add a record from anywhere (any thread, any process's JSON line) if it is at the level."""
        if event.levelno >= self.level:
            with self._guard:
                self._events.append(event)

    def drain(self) -> list[LogEvent]:
        with self._guard:
            events, self._events = self._events, []
        return events


class WarnFailPlugin:
    """Judges each test phase's collected records against ``allow_log``.

    With ``in_process`` the collector also listens to this process's loggers; without it, it only
    holds what the ``engine`` fixture feeds from engine subprocesses.
    """

    def __init__(self, in_process: bool = False) -> None:
        self.in_process = in_process
        self.collector = Collector()
        self.stray: list[LogEvent] = []
        self._floor = pytest.MonkeyPatch()
        self._attached: list[logging.Logger] = []

    def allows(self, item: pytest.Item, event: LogEvent) -> bool:
        """Whether some ``allow_log`` rule of ``item`` matches ``event`` (counts not consumed)."""
        return any(rule.matches(event) for rule in item.stash.get(RULES_KEY, ()))

    def _attach(self) -> None:
        if not self.in_process:
            return
        root = logging.getLogger()
        loggers = [root, *(lg for lg in root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
        for logger in loggers:
            if (logger is root or not logger.propagate) and logger not in self._attached:
                logger.addHandler(self.collector)
                self._attached.append(logger)

    def _keep_level_enabled(self, config: pytest.Config) -> None:
        """Records at the collector's level are created even where a logger's level (or
        ``caplog.set_level``) would drop them. Only for this session: the config's cleanup
        undoes it however the session ends."""
        original = logging.Logger.isEnabledFor
        floor = self.collector.level

        def is_enabled_for(logger: logging.Logger, level: int) -> bool:
            return (level >= floor and not logger.disabled) or original(logger, level)

        self._floor.setattr(logging.Logger, "isEnabledFor", is_enabled_for)
        config.add_cleanup(self._floor.undo)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.in_process:
            self._keep_level_enabled(session.config)
            self._attach()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.stray += self.collector.drain()
        for logger in self._attached:
            logger.removeHandler(self.collector)
        self._attached.clear()
        to_controller = getattr(session.config, "workeroutput", None)
        if isinstance(to_controller, dict):
            to_controller[_STRAY_OUTPUT] = [asdict(event) for event in self.stray]
        if self.stray and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist controller: a worker's records outside any test count here too."""
        for event in getattr(node, "workeroutput", {}).get(_STRAY_OUTPUT, []):
            self.stray.append(LogEvent(**event))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.stray:
            terminalreporter.write_sep("=", "WARN->FAIL: log records outside any test", red=True)
            for event in self.stray:
                terminalreporter.write_line(event.describe())

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            item.stash[RULES_KEY] = parse_allow_rules(item)

    def _judge(self, item: pytest.Item, when: str, *, raise_offences: bool) -> None:
        budget = item.stash.get(_BUDGET_KEY, None) or _Budget(item.stash.get(RULES_KEY, ()))
        offending = [event for event in self.collector.drain() if not budget.admit(event)]
        if not offending:
            return
        lines = "\n".join("  " + event.describe().replace("\n", "\n    ") for event in offending)
        item.add_report_section(when, SECTION, lines)
        if raise_offences:
            pytest.fail(
                f"WARN->FAIL: {len(offending)} WARNING-or-worse log record(s) during {when} "
                f"not allowed by @pytest.mark.{MARKER}:\n{lines}",
                pytrace=False,
            )

    def _phase(self, item: pytest.Item, when: str) -> Generator[None, object, object]:
        self._attach()
        try:
            result = yield
        except BaseException:
            self._judge(item, when, raise_offences=False)
            raise
        self._judge(item, when, raise_offences=True)
        return result

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        self.stray += self.collector.drain()
        if RULES_KEY not in item.stash:
            item.stash[RULES_KEY] = parse_allow_rules(item)
        item.stash[_BUDGET_KEY] = _Budget(item.stash[RULES_KEY])
        return (yield from self._phase(item, "setup"))

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        return (yield from self._phase(item, "call"))

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        return (yield from self._phase(item, "teardown"))


WARNFAIL_KEY: Final = pytest.StashKey[WarnFailPlugin]()
