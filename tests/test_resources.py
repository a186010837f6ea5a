"""The shipped-data locator: the checkout's top level here, `pytest_edgehil/_data` in an installed wheel,
and pyproject's force-include table shipping exactly what the locator promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_edgehil import resources
from pytest_edgehil.config.tomlfile import tomllib
from pytest_edgehil.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_a_checkout_reads_the_top_level_folders() -> None:
    assert resources.data_root() == REPO
    assert resources.shipped_path("fixtures/budgets.toml") == REPO / "fixtures" / "budgets.toml"
    assert resources.instrument_sim_file("N6705C") == REPO / "instruments" / "n6705c.yaml"


def test_a_missing_shipped_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'fixtures/nope.toml' not found under .*fixtures/budgets.toml"):
        resources.shipped_path("fixtures/nope.toml")
    with pytest.raises(ConfigError, match="instruments/xyz9000.yaml"):
        resources.instrument_sim_file("xyz9000")


def test_shipped_files_lists_a_folder_without_caches(tmp_path: Path) -> None:
    listed = dict(resources.shipped_files("suites"))
    on_disk = {p.relative_to(REPO).as_posix() for p in (REPO / "suites").glob("*.py")}
    assert on_disk <= set(listed) and "suites/conftest.py" in listed
    assert all("__pycache__" not in rel and not rel.endswith(".pyc") for rel in listed)
    assert dict(resources.shipped_files("fixtures/lab.sim.toml")) == {
        "fixtures/lab.sim.toml": REPO / "fixtures" / "lab.sim.toml"}


def test_the_wheel_force_includes_exactly_what_is_shipped() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    table = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert set(table) == set(resources.SHIPPED)
    for source, target in table.items():
        assert target == f"pytest_edgehil/_data/{source}"  # same relative paths as the checkout
        assert (REPO / source).exists(), source
    assert set(resources.STARTER_KIT) <= set(resources.SHIPPED)


def _copy_package_core(site: Path) -> Path:
    package = site / "pytest_edgehil"
    package.mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "resources.py"):
        shutil.copy(REPO / "pytest_edgehil" / name, package / name)
    return package


def _locate(site: Path, relative: str) -> subprocess.CompletedProcess[str]:
    code = ("import sys; from pytest_edgehil import resources as r\n"
            "try:\n    print(r.shipped_path(sys.argv[1]))\n"
            "except r.ConfigError as exc:\n    print('ConfigError:', exc); sys.exit(3)\n")
    # -I: isolated from PYTHONPATH and the user site, so only the copy under `site` is importable.
    return subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r})\n" + code,
                           relative], capture_output=True, text=True, timeout=60, check=False)


def test_an_installed_layout_reads_the_package_data(tmp_path: Path) -> None:
    """The locator as it sits in site-packages: no checkout around it, `_data` beside it."""
    package = _copy_package_core(tmp_path / "site")
    lab = package / "_data" / "fixtures" / "lab.sim.toml"
    lab.parent.mkdir(parents=True)
    lab.write_text("[lab]\n")
    done = _locate(tmp_path / "site", "fixtures/lab.sim.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(done.stdout.strip()) == lab.resolve()


def test_an_install_without_its_data_says_so(tmp_path: Path) -> None:
    package = _copy_package_core(tmp_path / "site")
    done = _locate(tmp_path / "site", "fixtures/lab.sim.toml")
    assert done.returncode == 3
    assert "shipped data is missing" in done.stdout and str(package.resolve() / "_data") in done.stdout
