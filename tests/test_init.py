"""`edgehil init`: the starter kit it writes runs the reference suites outside the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.starter import PYTEST_INI, write_starter_kit

REPO = Path(__file__).resolve().parent.parent
# Every file the kit must carry, read from the repository's own folders (not through the locator).
KIT_SOURCES = ["suites", "fixtures/budgets.toml", "fixtures/lab.sim.toml", "fixtures/lab.example-hw.toml",
               "fixtures/models", "fixtures/data"]


def repo_files(item: str) -> dict[str, bytes]:
    top = REPO / item
    paths = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
    return {p.relative_to(REPO).as_posix(): p.read_bytes() for p in paths
            if "__pycache__" not in p.parts and p.suffix != ".pyc"}


def expected_kit() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for item in KIT_SOURCES:
        files.update(repo_files(item))
    return files


def edgehil(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_edgehil.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def pytest_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # no addopts from outside
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False, env=env)


def collected(cwd: Path) -> list[str]:
    done = pytest_in(cwd, "suites/", "--device=coral", "--collect-only", "-q")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if line.startswith("suites/") and "::" in line]


def test_init_writes_the_kit_and_the_suites_pass_there(tmp_path: Path) -> None:
    project = tmp_path / "my-project"  # created by init
    done = edgehil("init", str(project), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    kit = expected_kit()
    assert written == set(kit) | {"pytest.ini"}
    for rel, content in kit.items():
        assert (project / rel).read_bytes() == content, rel
    assert (project / "pytest.ini").read_text() == PYTEST_INI
    assert "wrote     suites/conftest.py" in done.stdout and "wrote     pytest.ini" in done.stdout
    assert "pytest suites/ --device=coral" in done.stdout

    # The same command as in the checkout collects the same tests (same pairs: lab and budgets found) …
    checkout_ids, kit_ids = collected(REPO), collected(project)
    assert kit_ids == checkout_ids and any("coral" in test_id for test_id in kit_ids)
    # … and runs them green, with the written pytest.ini making the project pytest's rootdir.
    run = pytest_in(project, "suites/", "--device=coral")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"rootdir: {project}" in run.stdout
    tail = run.stdout.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped)", tail)}
    # Every kit test ran: passed, or skipped for a reason the meter gives (e.g. a stage the trace cannot
    # time on a board whose inference power matches its readout's); nothing failed.
    assert counts.get("passed", 0) + counts.get("skipped", 0) == len(kit_ids) and counts.get("passed", 0) > 0
    assert "failed" not in tail and "error" not in tail


def test_init_refuses_to_overwrite_changed_files_without_force(tmp_path: Path) -> None:
    assert edgehil("init", cwd=tmp_path).returncode == 0  # DIR defaults to the current directory
    budgets, suite = tmp_path / "fixtures" / "budgets.toml", tmp_path / "suites" / "test_latency.py"
    budgets.write_text("# my own budgets\n")
    suite.write_text("# my own suite\n")

    refused = edgehil("init", cwd=tmp_path)
    assert refused.returncode == 2
    assert "fixtures/budgets.toml" in refused.stderr and "suites/test_latency.py" in refused.stderr
    assert "--force" in refused.stderr and refused.stderr.startswith("edgehil init: error:")
    assert budgets.read_text() == "# my own budgets\n" and suite.read_text() == "# my own suite\n"

    again = edgehil("init", str(tmp_path), "--force", cwd=tmp_path.parent)
    assert again.returncode == 0, again.stderr
    assert "replaced  fixtures/budgets.toml" in again.stdout and "replaced  suites/test_latency.py" in again.stdout
    kit = expected_kit()
    assert budgets.read_bytes() == kit["fixtures/budgets.toml"]
    assert suite.read_bytes() == kit["suites/test_latency.py"]


def test_a_second_init_of_an_untouched_kit_changes_nothing(tmp_path: Path) -> None:
    write_starter_kit(tmp_path)
    kit = write_starter_kit(tmp_path)
    assert kit.written == [] and kit.replaced == []
    assert sorted(kit.unchanged) == sorted([*expected_kit(), "pytest.ini"])


@pytest.mark.parametrize(("name", "text"), [
    ("pyproject.toml", "[project]\nname = 'mine'\n[tool.pytest.ini_options]\naddopts = '-ra'\n"),
    ("tox.ini", "[tox]\nenvlist = py\n[pytest]\naddopts = -ra\n"),
    ("setup.cfg", "[metadata]\nname = mine\n[tool:pytest]\naddopts = -ra\n"),
    (".pytest.ini", "[pytest]\n"),
])
def test_an_existing_pytest_configuration_is_left_alone(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    kit = write_starter_kit(tmp_path)
    assert kit.pytest_config == name
    assert not (tmp_path / "pytest.ini").exists()
    assert (tmp_path / name).read_text() == text
    assert "fixtures/lab.sim.toml" in kit.written


def test_a_pyproject_without_pytest_settings_gets_a_pytest_ini(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    kit = write_starter_kit(tmp_path)
    assert kit.pytest_config is None and (tmp_path / "pytest.ini").read_text() == PYTEST_INI


def test_init_into_a_file_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("hello\n")
    with pytest.raises(ConfigError, match="notes.txt is a file"):
        write_starter_kit(target)
    with pytest.raises(ConfigError, match="notes.txt is a file"):  # a path below a file, too
        write_starter_kit(target / "sub")
    assert target.read_text() == "hello\n"


def test_an_unwritable_directory_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes anyway; a folder where the kit puts a file's parent is a fault root cannot write past.
        (tmp_path / "suites").write_text("a file where the kit needs a folder\n")
        with pytest.raises(ConfigError, match=r"cannot write .*suites"):
            write_starter_kit(tmp_path, force=True)
        return
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write"):
            write_starter_kit(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_a_broken_pyproject_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options\n")
    with pytest.raises(ConfigError, match="pyproject.toml is not valid TOML"):
        write_starter_kit(tmp_path)
    assert not (tmp_path / "suites").exists()
