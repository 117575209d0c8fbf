"""Finds secret values in dotenv text, quoted or not, and in the `.env*` files git tracks.

General scanners key on quoted string literals and miss `KEY=value` lines whose value is
bare, which is how `.env` files are usually written. This scanner parses dotenv lines itself
and flags an assignment when the name says secret (KEY, SECRET, TOKEN, PASSWORD, ...) and the
value is not an obvious placeholder, when a URL carries a password, or when the value looks
like a random credential whatever its name. Findings name the file, line and variable, never
the value.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["PASS", "FAIL", "WARN"]
Verdict = tuple[Status, str]

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*[=:]\s*(.*?)\s*$")
_SECRET_NAME = re.compile(
    r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|PWD|PASS|CREDENTIAL|PRIVATE|AUTH|SIGNATURE|SALT|COOKIE)",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s:/@]*:([^\s@/]+)@", re.IGNORECASE)
_CONNINFO_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*'?([^\s']+)", re.IGNORECASE)
_NOT_SECRET = re.compile(r"^(?:true|false|yes|no|on|off|[0-9]{1,6}(?:\.[0-9]+)?)$", re.IGNORECASE)
_REFERENCE = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}?$")
_PLACEHOLDER_WORDS = (
    "changeme", "change_me", "change-me", "replace", "your", "example", "dummy", "placeholder",
    "redacted", "todo", "xxx", "none", "null", "secret_here", "fixme", "<", "...", "***",
)  # fmt: skip
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9+/=_\-.]+$")
ENTROPY_MIN_LENGTH = 20
ENTROPY_MIN_BITS = 3.5
ENV_LIVE_FILE = ".env.live"
GIT_TIMEOUT_SEC = 5.0
SHOWN_FINDINGS = 5


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """Where a secret value was found; deliberately without the value."""

    path: str
    line: int
    name: str
    why: str

    def describe(self) -> str:
        return f"{self.path}:{self.line} {self.name} ({self.why})"


def _unquote(raw: str) -> str:
    value = raw
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        return value[1:end] if end > 0 else value[1:]
    hash_at = re.search(r"\s#", value)
    return value[: hash_at.start()].strip() if hash_at else value


def is_placeholder(value: str) -> bool:
    """Empty, a `${VAR}` reference, or text that announces itself as a stand-in."""
    lowered = value.strip().lower()
    if not lowered or _REFERENCE.match(value.strip()):
        return True
    if set(lowered) <= set("x*.-_<> "):
        return True
    return any(word in lowered for word in _PLACEHOLDER_WORDS)


def shannon_bits(value: str) -> float:
    """Shannon entropy per character."""
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def looks_random(value: str) -> bool:
    """A long token of credential characters with high entropy, mixing letters and digits."""
    return (
        len(value) >= ENTROPY_MIN_LENGTH
        and _TOKEN_CHARS.match(value) is not None
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and shannon_bits(value) >= ENTROPY_MIN_BITS
    )


def scan_dotenv(text: str, path: str) -> list[SecretFinding]:
    """Every line of dotenv `text` that assigns a real-looking secret."""
    findings: list[SecretFinding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            continue
        name, value = match.group(1), _unquote(match.group(2))
        embedded = _URL_PASSWORD.search(value) or _CONNINFO_PASSWORD.search(value)
        if embedded is not None and not is_placeholder(embedded.group(1)):
            findings.append(SecretFinding(path, number, name, "connection string with a password"))
        elif is_placeholder(value) or _NOT_SECRET.match(value):
            continue
        elif _SECRET_NAME.search(name):
            findings.append(SecretFinding(path, number, name, "secret-named variable with a value"))
        elif looks_random(value):
            findings.append(SecretFinding(path, number, name, "high-entropy value"))
    return findings


class GitUnavailable(Exception):
    """git exists but could not answer (timeout, unsafe directory, corrupt index): safety unproven."""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    """The finished command, or None when git is not installed at all."""
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SEC,
            check=False,
        )
    except FileNotFoundError:
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitUnavailable(f"git {args[0]} failed: {exc}") from None


def _stderr(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    return lines[0] if lines else f"exit status {done.returncode}"


def git_toplevel(repo: Path) -> Path | None:
    """The work tree root containing `repo`; None outside any work tree or without git installed."""
    done = _git(repo, "rev-parse", "--show-toplevel")
    if done is None:
        return None
    if done.returncode != 0:
        if "not a git repository" in done.stderr:
            return None
        raise GitUnavailable(_stderr(done))
    return Path(done.stdout.strip())


def tracked_env_files(top: Path) -> list[str]:
    """Tracked paths whose file name starts with `.env`, at any depth."""
    done = _git(top, "ls-files", "-z")
    if done is None or done.returncode != 0:
        raise GitUnavailable("git ls-files failed" if done is None else _stderr(done))
    return [p for p in done.stdout.split("\0") if p and Path(p).name.startswith(".env")]


def _in_work_tree(repo: Path, unproven: str, judge: Callable[[Path], Verdict]) -> Verdict:
    """`judge` on the git work tree around `repo`: WARN outside one, FAIL saying `unproven` when
    git cannot answer."""
    try:
        top = git_toplevel(repo)
        if top is None:
            return "WARN", f"{repo} is not in a git work tree (or git is not installed): nothing is tracked"
        return judge(top)
    except GitUnavailable as exc:
        return "FAIL", f"cannot inspect git, so {unproven}: {exc}"


def env_live_file_verdict(repo: Path) -> Verdict:
    """FAIL when `.env.live` is tracked anywhere or would not be ignored at the work tree root."""
    return _in_work_tree(repo, f"{ENV_LIVE_FILE} safety is unproven", _env_live_file_verdict)


def _env_live_file_verdict(top: Path) -> Verdict:
    tracked = [p for p in tracked_env_files(top) if Path(p).name == ENV_LIVE_FILE]
    if tracked:
        return "FAIL", f"{', '.join(tracked)} is tracked by git: git rm --cached it and rotate the keys"
    ignored = _git(top, "check-ignore", "-q", "--no-index", "--", ENV_LIVE_FILE)
    if ignored is None or ignored.returncode not in (0, 1):
        return "FAIL", f"git check-ignore failed: cannot prove {ENV_LIVE_FILE} is ignored"
    if ignored.returncode == 1:
        return "FAIL", f"{ENV_LIVE_FILE} is not git-ignored: add it to .gitignore"
    return "PASS", f"{ENV_LIVE_FILE} is untracked and git-ignored"


def tracked_env_secrets_verdict(repo: Path) -> Verdict:
    """FAIL when any tracked `.env*` file holds a secret, in its staged blob or its working copy."""
    return _in_work_tree(repo, "tracked .env* files are unchecked", _tracked_env_secrets_verdict)


def _tracked_env_secrets_verdict(top: Path) -> Verdict:
    paths = tracked_env_files(top)
    findings: set[str] = set()
    for path in paths:
        texts: list[str] = []
        staged = _git(top, "show", f":{path}")
        if staged is not None and staged.returncode == 0:
            texts.append(staged.stdout)
        with contextlib.suppress(OSError):
            texts.append((top / path).read_text(encoding="utf-8", errors="replace"))
        for text in texts:
            findings.update(f.describe() for f in scan_dotenv(text, path))
    if findings:
        shown = "; ".join(sorted(findings)[:SHOWN_FINDINGS])
        more = f" (+{len(findings) - SHOWN_FINDINGS} more)" if len(findings) > SHOWN_FINDINGS else ""
        return "FAIL", f"tracked env files hold secrets: {shown}{more}"
    return "PASS", f"{len(paths)} tracked .env* file(s), no secret values"
