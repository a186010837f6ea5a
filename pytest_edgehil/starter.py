"""`edgehil init [DIR] [--force]`: write the starter kit into a user's repository.

The kit is the shipped reference suites and the fixtures they and the plugin's defaults expect, laid out
as in this repository, so `pytest suites/ --device=coral` runs in DIR exactly as in a checkout:

    DIR/suites/…                     the reference suites and their conftest (finds ../fixtures/data)
    DIR/fixtures/lab.sim.toml        the default lab (simulated bench); lab.example-hw.toml beside it
    DIR/fixtures/budgets.toml        the budget table
    DIR/fixtures/models/, data/      the shipped models with their cards, the evaluation sets
    DIR/pytest.ini                   only when DIR has no pytest configuration of its own

Why pytest.ini: the plugin reads `fixtures/…` relative to pytest's *rootdir*. Without a configuration
file pytest takes the common ancestor of the arguments (`DIR/suites`) or a parent's configuration as
rootdir, and the plugin would find no lab and no budgets: no pairs, nothing run. A configuration file in
DIR makes DIR the rootdir; the one written here also names the three files, so a missing one is an error.
An existing configuration in DIR (pytest.ini, pyproject.toml with [tool.pytest.ini_options], tox.ini with
[pytest], setup.cfg with [tool:pytest]) already makes DIR the rootdir and is never touched.

Files already present with the shipped content are left as they are; files that differ are refused,
all named, unless `--force` (then nothing is written at all without it).
"""

from __future__ import annotations

import argparse
import configparser
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_edgehil.config.catalog import CARD_FIX, card_from_data, check_card_hash
from pytest_edgehil.config.tomlfile import parse_json, read_toml
from pytest_edgehil.errors import ConfigError, ModelCardMismatch
from pytest_edgehil.resources import STARTER_KIT, shipped_files

PYTEST_INI = """\
# Written by `edgehil init`. A pytest configuration file here makes this directory pytest's rootdir,
# which is where pytest-edgehil looks for fixtures/; the settings name its files explicitly, so a
# missing one stops the run with an error instead of running no pairs.
[pytest]
edgehil_lab = fixtures/lab.sim.toml
edgehil_budgets = fixtures/budgets.toml
edgehil_models_dir = fixtures/models
"""

NEXT_COMMAND = "pytest suites/ --device=coral"


def pytest_command(path: str | None = None) -> str:
    """How to start this environment's pytest from a new shell: `pytest` where the one first on PATH (`path`,
    default $PATH) is this interpreter's, else this interpreter with `-m pytest`. `edgehil init` run as
    `.venv/bin/edgehil` in a shell without the venv activated said `pytest …`, which is not installed there
    (or is another environment's, without this plugin)."""
    found = shutil.which("pytest", path=path)
    here = Path(sys.executable).parent
    if found is not None and Path(found).resolve().parent == here.resolve():
        return "pytest"
    return f"{sys.executable} -m pytest"


@dataclass
class StarterKit:
    """What `write_starter_kit` did, paths relative to `dest`."""

    dest: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    pytest_config: str | None = None  # an existing configuration file that makes dest the rootdir


def existing_pytest_config(directory: Path) -> str | None:
    """Name of the pytest configuration file in `directory` (not its parents), or None.

    Follows pytest's own rules for what counts: pytest.ini and .pytest.ini always; pyproject.toml,
    tox.ini and setup.cfg only with their pytest section.
    """
    for name in ("pytest.ini", ".pytest.ini"):
        if (directory / name).is_file():
            return name
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        data = read_toml(pyproject, "project file", "fix it, then rerun edgehil init")
        if "ini_options" in data.get("tool", {}).get("pytest", {}):
            return "pyproject.toml"
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = directory / name
        if path.is_file():
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read(path, encoding="utf-8")
            except configparser.Error as exc:
                raise ConfigError(f"{path}: cannot read it to see whether it configures pytest ({exc}); "
                                  "fix the file, then rerun edgehil init") from None
            if parser.has_section(section):
                return name
    return None


def _plan(dest: Path) -> tuple[list[tuple[str, bytes]], str | None]:
    """(relative path, content) of every file to be in dest, and the existing pytest config if any."""
    shipped = [(rel, path, path.read_bytes()) for item in STARTER_KIT for rel, path in shipped_files(item)]
    _check_model_hashes(shipped, dest)
    files = [(rel, data) for rel, _, data in shipped]
    config = existing_pytest_config(dest) if dest.is_dir() else None
    if config == "pytest.ini" and (dest / config).read_bytes() == PYTEST_INI.encode():
        config = None  # ours, from an earlier init: part of the kit, reported as up to date
    if config is None:
        files.append(("pytest.ini", PYTEST_INI.encode()))
    return files, config


def _check_model_hashes(shipped: list[tuple[str, Path, bytes]], dest: Path) -> None:
    """ModelCardMismatch, before anything is written, for a shipped model whose card states another hash
    (a damaged installation): the kit would carry a model its card does not describe."""
    content = {rel: data for rel, _, data in shipped}
    for rel, source, data in shipped:
        card_rel = rel[:-len(".tflite")] + ".json" if rel.endswith(".tflite") else None
        if card_rel is None or card_rel not in content:
            continue
        card_path = source.with_suffix(".json")
        card = card_from_data(parse_json(content[card_rel].decode("utf-8"), "model card", str(card_path),
                                         CARD_FIX), card_path)
        try:
            check_card_hash(Path(rel).stem, source, data, card)
        except ModelCardMismatch as exc:
            raise ModelCardMismatch(f"edgehil init: the installed kit is damaged, nothing was written to {dest}: "
                                    f"{exc}; reinstall pytest-edgehil", model=exc.model, path=exc.path,
                                    stated=exc.stated, actual=exc.actual) from exc


def write_starter_kit(dest: Path, force: bool = False) -> StarterKit:
    """Write the starter kit into `dest` (created if missing) and say what was written.

    Raises ConfigError, writing nothing, when `dest` is not a directory or when files in it differ from
    the kit and `force` is false (the message names every one of them).
    """
    # The nearest existing ancestor decides: `afile/sub` cannot be created any more than `afile` can.
    existing = next((p for p in (dest, *dest.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{existing} is a file: name a directory for edgehil init (default: the current one)")
    files, config = _plan(dest)
    kit = StarterKit(dest=dest, pytest_config=config)
    conflicts: list[str] = []
    for rel, content in files:
        target = dest / rel
        if target.is_dir() or (target.exists() and target.read_bytes() != content):
            conflicts.append(rel)
    if conflicts and not force:
        raise ConfigError(
            f"{len(conflicts)} file(s) in {dest.resolve()} differ from the starter kit and would be overwritten: "
            f"{', '.join(conflicts)}; keep your changes (nothing was written), or rerun with --force to "
            "replace them")
    for rel, content in files:
        target = dest / rel
        if target.is_file() and target.read_bytes() == content:
            kit.unchanged.append(rel)
            continue
        try:
            if target.is_dir():  # only with --force: a folder where the kit has a file
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        except OSError as exc:  # permissions, a full disk, a file where a folder must go
            done = len(kit.written) + len(kit.replaced)
            raise ConfigError(f"edgehil init: cannot write {target}: {exc.strerror or exc}; {done} file(s) were "
                              "written before it. Fix the directory's permissions or free space and rerun "
                              "(files already written are recognised as up to date)") from exc
        (kit.replaced if rel in conflicts else kit.written).append(rel)
    return kit


def _summary(kit: StarterKit) -> list[str]:
    lines = [f"edgehil init: starter kit in {kit.dest.resolve()}"]
    lines += [f"  wrote     {rel}" for rel in kit.written]
    lines += [f"  replaced  {rel}" for rel in kit.replaced]
    if kit.unchanged:
        lines.append(f"  {len(kit.unchanged)} file(s) already up to date")
    if kit.pytest_config is not None:
        lines.append(f"  pytest.ini not written: {kit.pytest_config} already configures pytest here, so this "
                     "directory is the rootdir the plugin reads fixtures/ from")
    where = "" if kit.dest.resolve() == Path.cwd().resolve() else f"cd {kit.dest} && "
    lines += ["next:", f"  {where}{NEXT_COMMAND.replace('pytest', pytest_command(), 1)}",
              "  (--device=all for every simulated board; --lab=… for real hardware, see lab.example-hw.toml)"]
    return lines


def _run_init(args: argparse.Namespace) -> int:
    kit = write_starter_kit(Path(args.dir), force=args.force)
    print("\n".join(_summary(kit)))
    return 0


def add_init_command(subparsers: Any) -> None:
    """Register `edgehil init` on the `edgehil` command line (see pytest_edgehil.cli)."""
    parser = subparsers.add_parser(
        "init", help="write the reference suites, default lab, budgets and models into a project",
        description="Write a starter kit into DIR: suites/ (the reference suites), fixtures/ (the simulated "
                    "lab, an example hardware lab, budgets, models and evaluation sets) and, unless DIR "
                    "already configures pytest, a pytest.ini that makes DIR pytest's rootdir. Then run "
                    f"'{NEXT_COMMAND}' there. Files that differ from the kit are not overwritten without "
                    "--force.")
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR",
                        help="directory to write into (default: the current one; created if missing)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite files that differ from the kit (your changes to them are lost)")
    parser.set_defaults(handler=_run_init)
