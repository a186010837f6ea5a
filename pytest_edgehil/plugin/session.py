"""Options, ini values and files → the frozen `EdgeHILSession`, and whether edgehil is in use at all.

In use (header printed, session built and validated at start-up) when any edgehil option or ini value
is given, or the default lab or budget file exists under the rootdir. Otherwise the plugin stays silent
and builds the session only if a test asks for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.config.budget_layers import load_layered_budgets
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import (
    apply_backend,
    load_lab,
    select_devices,
    selected_names,
    simulated_lab,
    unusable_warnings,
)
from pytest_edgehil.config.pairs import check_budget_targets, generate_pairs, is_selected, why_no_pairs
from pytest_edgehil.config.session import EdgeHILSession
from pytest_edgehil.errors import ConfigError

DEFAULT_LAB = "fixtures/lab.sim.toml"
DEFAULT_BUDGETS = "fixtures/budgets.toml"
DEFAULT_MODELS = "fixtures/models"

# dest of every edgehil command-line option → its default (an option counts as given when it differs).
OPTION_DEFAULTS: dict[str, object] = {
    "lab": None, "device": None, "model": None, "backend": None, "budgets": None, "budgets_only": False,
    "dataset_root": None,
    "edgehil_seed": 0, "analyzer": None, "edgehil_save": None, "edgehil_baseline": None, "edgehil_fail_on": None,
    "edgehil_history": None,
}
# name → (help, default) of every edgehil ini value; a value counts as given when it differs from its default.
INI_VALUES: dict[str, tuple[str, str]] = {
    "edgehil_lab": ("default lab file", ""),
    "edgehil_budgets": ("default budget table", ""),
    "edgehil_models_dir": ("directory of NAME.tflite models and NAME.json cards", ""),
    "edgehil_latency_runs": ("inferences per latency measurement", "50"),
    "edgehil_energy_windows": ("simulated bench: acquisition windows per energy measurement", ""),
    "edgehil_energy_runs": ("simulated bench: inferences per acquisition window", ""),
    "edgehil_lock_timeout": ("seconds to wait for a board another process holds (0: fail at once, 'busy')", "0"),
    "edgehil_twin_realtime": ("simulated bench: twins run in wall-clock time × this (0: answer at once)", "0"),
    "edgehil_results_keep": ("runs kept in edgehil-results/ (older run files deleted as a run finishes)", "200"),
    "edgehil_history": ("history store (SQLite) runs are added to (rootdir-relative; 'off': none)", ""),
}


def in_use(config: pytest.Config) -> bool:
    """Whether this run asks for edgehil: an option or ini value given, or a default lab/budget file present."""
    if any(config.getoption(dest, default) != default for dest, default in OPTION_DEFAULTS.items()):
        return True
    if any(config.getini(name) != default for name, (_, default) in INI_VALUES.items()):
        return True
    return any((config.rootpath / default).is_file() for default in (DEFAULT_LAB, DEFAULT_BUDGETS))


def _path_option(config: pytest.Config, option: str, ini: str, default: str) -> tuple[Path, bool]:
    """(path, explicitly given). Relative ini/default paths are taken from the rootdir."""
    value = config.getoption(option) if option else None
    if value:
        return Path(value), True
    ini_value = config.getini(ini)
    if ini_value:
        return config.rootpath / ini_value, True
    return config.rootpath / default, False


def budget_layer_paths(config: pytest.Config) -> list[Path]:
    """The budget tables to layer, lowest first (`config/budget_layers.py`): the rootdir's shipped table
    when present, the ini `edgehil_budgets` table, the `--budgets` table; `--budgets-only`: that alone."""
    option = config.getoption("--budgets")
    if config.getoption("--budgets-only"):
        if not option:
            raise ConfigError("--budgets-only: give the table with --budgets PATH (it is then the only "
                              "budget table read; without --budgets-only it is layered over the shipped one)")
        return [Path(option)]
    shipped = config.rootpath / DEFAULT_BUDGETS
    ini = config.getini("edgehil_budgets")
    paths = [shipped] if shipped.is_file() else []
    paths += [config.rootpath / ini] if ini else []
    paths += [Path(option)] if option else []
    return paths


def build_session(config: pytest.Config) -> EdgeHILSession:
    """Read and validate everything edgehil needs. Raises ConfigError naming the file or option and the fix."""
    lab_path, explicit = _path_option(config, "--lab", "edgehil_lab", DEFAULT_LAB)
    selection = config.getoption("--device")
    lab = load_lab(lab_path, selected=selected_names(selection)) if explicit or lab_path.is_file() else simulated_lab()
    for line in unusable_warnings(lab):  # another board's broken entry: seen in every run, refusing none
        config.issue_config_time_warning(pytest.PytestConfigWarning(line), stacklevel=2)
    lab = apply_backend(lab, config.getoption("--backend"))
    devices = select_devices(lab, config.getoption("--device"))
    budget_paths = budget_layer_paths(config)
    budgets_found = bool(budget_paths)
    budgets_path = budget_paths[-1] if budget_paths else config.rootpath / DEFAULT_BUDGETS
    budgets = load_layered_budgets(budget_paths)
    models_dir, _ = _path_option(config, "", "edgehil_models_dir", DEFAULT_MODELS)
    catalog = ModelCatalog(models_dir)
    model_opt = config.getoption("--model")
    models = [m.strip() for m in model_opt.split(",") if m.strip()] if model_opt else None
    extra = [m for m in models or [] if m.endswith(".tflite")]
    device_opt = config.getoption("--device")
    if device_opt and not budgets_found and not extra:
        raise ConfigError(
            f"--device {device_opt}: no budget table found (looked at --budgets, the ini value edgehil_budgets "
            f"and {budgets_path}), so there is no model/device pair to run. Pass --budgets PATH, set "
            "edgehil_budgets in your pytest ini file, run `edgehil init` to write a starter lab, budgets and "
            "suite here, or pass --model PATH.tflite to run a model without a budget")
    for m in models or []:
        catalog.get(m)  # an unknown name or missing file fails at start-up, not mid-run
    check_budget_targets(budgets, catalog, lab, extra)  # a budget that can never run fails here, not silently
    pairs = generate_pairs(budgets, lab, extra, devices)
    if (device_opt or models) and not any(is_selected(p, devices, models) for p in pairs):
        raise ConfigError(why_no_pairs(pairs, devices, models))
    # The models asked for by name or given by path are read and analysed now: a damaged file, or a dynamic
    # input without a size, fails at start-up instead of at every device's LOAD_END or RUN. Shipped catalog
    # models reached only through the budget table are left to the tests (no analysis at every start).
    asked = set(models or ()) | {p.model for p in pairs
                                 if p.model.endswith(".tflite") and is_selected(p, devices, models)}
    for model in sorted(asked):
        catalog.get(model).check()
    # Every selected model's bytes are compared with its card's sha256 now (hashing is cheap; the analysis
    # is not): a changed file stops the run once, naming both hashes, instead of erroring every test.
    for model in sorted({p.model for p in pairs if is_selected(p, devices, models)} - asked):
        catalog.get(model).data  # noqa: B018 (read for its check: ModelCardMismatch)
    root = config.getoption("--dataset-root")
    return EdgeHILSession(lab=lab, devices=tuple(devices), models=tuple(models) if models else None,
                          catalog=catalog, budgets=tuple(budgets), pairs=tuple(pairs),
                          seed=config.getoption("--edgehil-seed"),
                          dataset_root=Path(root) if root else lab.dataset_root,
                          analyzer_override=config.getoption("--analyzer"))
