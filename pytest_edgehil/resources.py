"""Where the shipped data lives: reference suites, default lab, budgets, models, evaluation sets and
pyvisa-sim files, found the same way in a checkout and in an installed wheel.

The repository keeps ONE copy of that data in its top-level folders (`suites/`, `fixtures/`,
`instruments/`). The wheel carries the same tree under `pytest_edgehil/_data/` (pyproject's
`[tool.hatch.build.targets.wheel.force-include]`), so a shipped path such as `"fixtures/budgets.toml"`
means the same file in both places; only the root differs (`data_root()`):

- installed from a wheel (or sdist): `<site-packages>/pytest_edgehil/_data/`;
- a checkout, an editable install or `PYTHONPATH=<checkout>`: the checkout's top level, found as the
  directory above this package whose `pyproject.toml` names the project.

Stdlib only and no work at import time: `edgehil init` and the plugin may import it on every start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pytest_edgehil.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_DATA = PACKAGE_DIR / "_data"
CHECKOUT = PACKAGE_DIR.parent
PROJECT_NAME = "pytest-edgehil"

# What `edgehil init` writes into a user's repository: the suites with their conftest, and the fixtures
# the plugin's defaults and suites/conftest.py look for (relative layout kept as in the checkout).
STARTER_KIT: tuple[str, ...] = (
    "suites",
    "fixtures/budgets.toml",
    "fixtures/lab.sim.toml",
    "fixtures/lab.example-hw.toml",
    "fixtures/models",
    "fixtures/data",
)
# Everything the wheel ships as data (must match pyproject's force-include table; a test checks it).
SHIPPED: tuple[str, ...] = (*STARTER_KIT, "instruments")

# Never data, wherever they turn up in a checkout.
_SKIPPED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".DS_Store"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def _is_checkout(root: Path) -> bool:
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return False
    # A plain text check keeps this module free of a TOML parser on Python 3.10.
    return f'name = "{PROJECT_NAME}"' in text and (root / "fixtures").is_dir()


def data_root() -> Path:
    """The directory the shipped paths are relative to (see the module docstring).

    Raises ConfigError when this installation has neither the wheel's package data nor a checkout
    around it (e.g. a wheel built by hand without the force-include table).
    """
    if PACKAGE_DATA.is_dir():
        return PACKAGE_DATA
    if _is_checkout(CHECKOUT):
        return CHECKOUT
    raise ConfigError(
        f"pytest-edgehil's shipped data is missing: neither {PACKAGE_DATA} (an installed wheel) nor a "
        f"checkout at {CHECKOUT} (pyproject.toml naming {PROJECT_NAME} beside fixtures/); reinstall with "
        f"'pip install --force-reinstall {PROJECT_NAME}' or run from a checkout of the repository")


def shipped_path(relative: str) -> Path:
    """Absolute path of a shipped file or folder, e.g. `shipped_path("fixtures/lab.sim.toml")`.

    `relative` is a POSIX path below the data root, as in the repository's top level. Raises
    ConfigError naming the path and where it was looked for when it does not exist.
    """
    root = data_root()
    path = root.joinpath(*relative.split("/"))
    if not path.exists():
        raise ConfigError(
            f"shipped file {relative!r} not found under {root}; shipped are {', '.join(SHIPPED)} — "
            f"check the name, or reinstall {PROJECT_NAME} if files were removed")
    return path


def instrument_sim_file(model: str) -> Path:
    """The pyvisa-sim definition of a power analyzer model (e.g. `"n6705c"`), for
    `pyvisa.ResourceManager(f"{path}@sim")`. Raises ConfigError for an unknown model."""
    return shipped_path(f"instruments/{model.lower()}.yaml")


def shipped_files(relative: str) -> Iterator[tuple[str, Path]]:
    """Every file of a shipped file or folder as (POSIX path relative to the data root, absolute path),
    sorted, without bytecode and tool caches. Raises ConfigError when `relative` is not shipped."""
    root = data_root()
    top = shipped_path(relative)
    candidates = sorted(top.rglob("*")) if top.is_dir() else [top]
    for path in candidates:
        rel_parts = path.relative_to(root).parts
        if not path.is_file() or any(part in _SKIPPED_NAMES for part in rel_parts):
            continue
        if path.name.endswith(_SKIPPED_SUFFIXES):
            continue
        yield "/".join(rel_parts), path
