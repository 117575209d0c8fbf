"""What the side-by-side benches share: a second source tree to compare against, the environment
that runs the engine from a given tree, and one pair of servers for every run.

The base tree is a detached git worktree of `--base-rev` (removed afterwards) or an existing
checkout given as `--base-path`. Both trees run on this interpreter, each first on PYTHONPATH,
with bytecode caching on (PYTHONDONTWRITEBYTECODE dropped) and one warm-up run each, so neither
side pays for compiling its modules.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from arbitrage.services import EmbeddedServices

HERE = Path(__file__).resolve().parent.parent


def add_base_options(parser: argparse.ArgumentParser) -> None:
    """--base-rev / --base-path: what "before" is."""
    parser.add_argument("--base-rev", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--base-path", type=Path, help="an existing checkout to compare against instead")


@contextlib.contextmanager
def base_tree(args: argparse.Namespace) -> Iterator[Path]:
    """The tree to compare against, as chosen by `add_base_options`'s flags."""
    if args.base_path is not None:
        yield args.base_path.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-base-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(HERE)]
        subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(tree), args.base_rev], check=True)
        try:
            yield tree
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that runs `python -m arbitrage` from `tree`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "POSTGRES_DSN", "REDIS_URL")
    }
    env["PYTHONPATH"] = str(tree)
    return env


def describe(tree: Path) -> str:
    """The tree's commit, short, with a mark when it has uncommitted changes."""
    git = ["git", "-C", str(tree)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


@contextlib.contextmanager
def running_servers() -> Iterator[tuple[str, str]]:
    """One embedded PostgreSQL and Redis for every run of the bench: (dsn, url)."""
    with tempfile.TemporaryDirectory(prefix="bench-services-") as tmp:
        services = EmbeddedServices(Path(tmp))
        try:
            endpoints = services.resolve(None, None)
            yield endpoints.postgres_dsn, endpoints.redis_url
        finally:
            services.stop()


def database_for(dsn: str, name: str) -> str:
    """A fresh database `name` on the server of `dsn`, and its DSN: each tree gets its own, so a
    base whose ledger schema differs from this tree's never meets this tree's tables."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(dsn, dbname=name)


def redis_db(url: str, index: int) -> str:
    """`url` (one that names no database) on logical database `index`: a tree's own keyspace, as
    `database_for` gives it its own PostgreSQL database."""
    return f"{url}{'&' if '?' in url else '?'}db={index}"
