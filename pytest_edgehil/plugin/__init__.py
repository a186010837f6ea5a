"""The pytest plugin: options, the edgehil session in `config.stash`, parametrization and reporting.

Data flows one way: options and lab file → `EdgeHILSession` (configure time, validated up front) →
pairs parametrize the suites → fixtures bring devices up → tests record measurements → summary.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from pytest_edgehil.config.budgets import load_budgets
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import apply_backend, load_lab, select_devices, simulated_lab
from pytest_edgehil.config.pairs import Pair, generate_pairs, is_selected
from pytest_edgehil.errors import EdgeHILError
from pytest_edgehil.plugin.fixtures import (  # noqa: F401  (fixtures are found by pytest through this module)
    dataset_root,
    device,
    edgehil_bench,
    edgehil_model,
    edgehil_pair,
    edgehil_record,
    edgehil_session,
    energy_meter,
    energy_plan,
    model_info,
    power_analyzer,
)
from pytest_edgehil.plugin.gate import DEFAULT_FAIL_ON
from pytest_edgehil.plugin.gate import register as register_gate
from pytest_edgehil.plugin.session import EdgeHILSession, duts_key, session_key
from pytest_edgehil.results.records import records_from_properties
from pytest_edgehil.results.summary import summary_lines

DEFAULT_LAB = "fixtures/lab.sim.toml"
DEFAULT_BUDGETS = "fixtures/budgets.toml"
DEFAULT_MODELS = "fixtures/models"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgehil", "edge hardware-in-the-loop (pytest-edgehil)")
    group.addoption("--lab", default=None, help=f"lab file (TOML) naming the devices; default {DEFAULT_LAB} "
                                                "or, without it, the simulated bench")
    group.addoption("--device", default=None, help="device name(s) from the lab, comma-separated, or 'all'")
    group.addoption("--model", default=None, help="model name(s) from the catalog, or PATH.tflite, comma-separated")
    group.addoption("--backend", default=None, choices=["sim", "hw"], help="force simulated twins or real hardware")
    group.addoption("--budgets", default=None, help=f"budget table (TOML); default {DEFAULT_BUDGETS}")
    group.addoption("--dataset-root", default=None, help="root of a public dataset (e.g. CHASE_DB1)")
    group.addoption("--edgehil-seed", type=int, default=0, help="seed of the simulated twins' jitter and noise")
    group.addoption("--analyzer", default=None, help="VISA resource of the power analyzer, overriding the lab file")
    group.addoption("--edgehil-save", default=None, metavar="PATH",
                    help="write the results file (JSON) here, rewritten atomically after every measurement")
    group.addoption("--edgehil-baseline", default=None, metavar="PATH",
                    help="results file to gate against: fail the run on significant regressions")
    group.addoption("--edgehil-fail-on", default=DEFAULT_FAIL_ON, metavar="FAMILY:PCT,…",
                    help=f"regressions that fail the gate (default {DEFAULT_FAIL_ON}); families: energy, latency, "
                         "accuracy, footprint; add 'missing' or 'unknown' to make those verdicts fail too")
    parser.addini("edgehil_lab", "default lab file", default="")
    parser.addini("edgehil_budgets", "default budget table", default="")
    parser.addini("edgehil_models_dir", "directory of NAME.tflite models and NAME.json cards", default="")
    parser.addini("edgehil_latency_runs", "inferences per latency measurement", default="50")
    parser.addini("edgehil_energy_windows", "simulated bench: acquisition windows per energy measurement", default="")
    parser.addini("edgehil_energy_runs", "simulated bench: inferences per acquisition window", default="")


def _path_option(config: pytest.Config, option: str, ini: str, default: str) -> tuple[Path, bool]:
    """(path, explicitly given). Relative ini/default paths are taken from the rootdir."""
    value = config.getoption(option) if option else None
    if value:
        return Path(value), True
    ini_value = config.getini(ini)
    if ini_value:
        return config.rootpath / ini_value, True
    return config.rootpath / default, False


def build_session(config: pytest.Config) -> EdgeHILSession:
    lab_path, explicit = _path_option(config, "--lab", "edgehil_lab", DEFAULT_LAB)
    lab = load_lab(lab_path) if explicit or lab_path.is_file() else simulated_lab()
    lab = apply_backend(lab, config.getoption("--backend"))
    devices = select_devices(lab, config.getoption("--device"))
    budgets_path, explicit = _path_option(config, "--budgets", "edgehil_budgets", DEFAULT_BUDGETS)
    budgets = load_budgets(budgets_path) if explicit or budgets_path.is_file() else []
    models_dir, _ = _path_option(config, "", "edgehil_models_dir", DEFAULT_MODELS)
    catalog = ModelCatalog(models_dir)
    model_opt = config.getoption("--model")
    models = [m.strip() for m in model_opt.split(",") if m.strip()] if model_opt else None
    extra = [m for m in models or [] if m.endswith(".tflite")]
    for m in models or []:
        catalog.get(m)  # an unknown name or missing file fails at start-up, not mid-run
    pairs = generate_pairs(budgets, lab, extra, devices)
    root = config.getoption("--dataset-root")
    return EdgeHILSession(lab=lab, devices=devices, models=models, catalog=catalog, budgets=budgets,
                          pairs=pairs, seed=config.getoption("--edgehil-seed"),
                          dataset_root=Path(root) if root else lab.dataset_root,
                          analyzer_override=config.getoption("--analyzer"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "edgehil_metrics(*metrics, unbudgeted=False): parametrize over the "
                                       "model/device pairs whose budget has any of these metrics")
    try:
        session = build_session(config)
    except EdgeHILError as exc:
        raise pytest.UsageError(f"pytest-edgehil: {exc}") from None
    config.stash[session_key] = session
    config.pluginmanager.register(EdgeHILReporter(session), "edgehil-reporter")
    register_gate(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None and session.bench is not None:
        session.bench.close()
    reporter = config.pluginmanager.get_plugin("edgehil-reporter")
    if reporter is not None:
        config.pluginmanager.unregister(reporter)


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[session_key]
    where = s.lab.path or "built-in simulated bench"
    return [(f"edgehil: {s.backend_label} — lab {s.lab.name!r} ({where}); devices: {', '.join(s.devices)}; "
            f"{len(s.budgets)} budget entries")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "edgehil_pair" not in metafunc.fixturenames:
        return
    s = metafunc.config.stash[session_key]
    marker = metafunc.definition.get_closest_marker("edgehil_metrics")
    metrics = tuple(marker.args) if marker else ()
    unbudgeted = bool(marker.kwargs.get("unbudgeted", False)) if marker else True
    pairs = [p for p in s.pairs if (not metrics or p.has_any(metrics)) or (p.budget is None and unbudgeted)]
    metafunc.parametrize("edgehil_pair", pairs, ids=[p.id for p in pairs])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    s = config.stash[session_key]
    keep, deselected = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        pair = callspec.params.get("edgehil_pair") if callspec else None
        if isinstance(pair, Pair) and not is_selected(pair, s.devices, s.models):
            deselected.append(item)
        else:
            keep.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for dut in item.stash.get(duts_key, []):
            report.sections.append((f"serial traffic {dut.name} ({dut.port})", dut.traffic.text()))
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    # Every result line of an edgehil test says which bench produced it.
    if report.when == "call" and any(k == "edgehil" for k, _ in report.user_properties):
        label = config.stash[session_key].backend_label
        if report.passed:
            return "passed", ".", f"PASSED [{label}]"
        if report.failed:
            return "failed", "F", f"FAILED [{label}]"
    return None


class EdgeHILReporter:
    """Collects records from test reports on the controller and prints the summary table."""

    def __init__(self, session: EdgeHILSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.session.records.extend(records_from_properties(report.user_properties))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.session.records:
            return
        terminalreporter.write_sep("=", f"edgehil summary ({self.session.backend_label})")
        for line in summary_lines(self.session.records):
            terminalreporter.write_line(line)
