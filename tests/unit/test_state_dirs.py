"""State directories: the project root, else the user data directory, else what was set; never the cwd."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbitrage.config import load, with_state_dirs
from arbitrage.config.state_dirs import BUILT_IN, StateBase, file_base, find_project_root, resolve_state_path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "config" / "v2").mkdir(parents=True)
    (root / "config" / "v2" / "config.yml").write_text("run:\n  seed: 3\n")
    (root / "src" / "deep").mkdir(parents=True)
    return root


@pytest.fixture(autouse=True)
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def test_the_project_root_is_found_from_below(project: Path, tmp_path: Path) -> None:
    assert find_project_root(project / "src" / "deep") == project.resolve()
    assert find_project_root(project) == project.resolve()
    assert find_project_root(tmp_path) is None


def test_outside_a_project_the_base_is_the_user_data_directory(tmp_path: Path, xdg: Path) -> None:
    assert StateBase.discover(tmp_path) == StateBase(xdg / "arbitrage", "user data directory")


def test_a_directory_named_like_the_marker_is_not_a_project(tmp_path: Path) -> None:
    (tmp_path / "config" / "v2" / "config.yml").mkdir(parents=True)
    assert find_project_root(tmp_path) is None


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (BUILT_IN, "{base}/logs/evidence"),
        ("{file}", "{project}/logs/evidence"),
        ("CLI --evidence-root", "{cwd}/logs/evidence"),
        ("env ARB_RUN__EVIDENCE_ROOT", "{cwd}/logs/evidence"),
    ],
)
def test_a_relative_setting_resolves_by_its_origin(
    project: Path, tmp_path: Path, origin: str, expected: str
) -> None:
    file = project / "config" / "v2" / "config.yml"
    base = StateBase(tmp_path / "base", "user data directory")
    cwd = project / "src"
    names = {"base": str(base.path), "file": str(file), "project": str(project.resolve()), "cwd": str(cwd)}
    got = resolve_state_path(
        "run.evidence_root", Path("logs/evidence"), origin.format(**names), base=base, file=file, cwd=cwd
    )
    assert got.path == Path(expected.format(**names))
    assert got.origin == origin.format(**names)


def test_an_absolute_setting_is_kept_and_a_home_path_expanded(tmp_path: Path) -> None:
    base = StateBase(tmp_path, "project root")
    kept = resolve_state_path(
        "services.data_dir", tmp_path / "x", "CLI --data-dir", base=base, file=None, cwd=tmp_path
    )
    assert kept.path == tmp_path / "x"
    home = resolve_state_path(
        "services.data_dir", Path("~/svc"), BUILT_IN, base=base, file=None, cwd=tmp_path
    )
    assert home.path == Path.home() / "svc"


def test_a_config_file_elsewhere_anchors_its_relative_paths_at_its_directory(tmp_path: Path) -> None:
    other = tmp_path / "ops" / "prod.yml"
    assert file_base(other) == (tmp_path / "ops").resolve()


def test_loading_inside_a_project_reads_its_config_and_puts_state_under_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "src" / "deep")
    loaded = with_state_dirs(load(None, env={}))
    assert loaded.file == project.resolve() / "config" / "v2" / "config.yml"
    assert loaded.config.run.seed == 3
    assert loaded.config.run.evidence_root == project.resolve() / "logs" / "evidence"
    assert loaded.config.services.data_dir == project.resolve() / ".services"
    assert [entry.key for entry in loaded.state] == ["run.evidence_root", "services.data_dir"]


def test_loading_outside_a_project_never_uses_the_current_directory(
    tmp_path: Path, xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    loaded = with_state_dirs(load(None, env={}))
    assert loaded.file is None
    assert loaded.config.run.evidence_root == xdg / "arbitrage" / "logs" / "evidence"
    assert loaded.config.services.data_dir == xdg / "arbitrage" / ".services"
    assert "user data directory" in loaded.state[0].describe()


def test_an_env_setting_wins_and_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = with_state_dirs(load(None, env={"ARB_SERVICES__DATA_DIR": "svc"}))
    assert loaded.config.services.data_dir == tmp_path.resolve() / "svc"
    assert loaded.state[1].origin == "env ARB_SERVICES__DATA_DIR"
