"""The pytest plugin: options, the edgehil run in `config.stash`, parametrization and reporting.

Data flows one way: options and lab file → `EdgeHILSession` (configure time, validated up front) →
pairs parametrize the tests marked `edgehil_metrics` → fixtures bring devices up → tests record
measurements → one collection of records → summary, results file, gate, JUnit properties.

Importing this module loads pytest and the configuration layer only (tomllib, dataclasses): it is imported
in every pytest run of every project where the package is installed. Hardware, measurement, LiteRT and
the results/report code are imported by the fixture or hook that needs them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

import pytest

from pytest_edgehil.config.session import EdgeHILSession
from pytest_edgehil.errors import EdgeHILError
from pytest_edgehil.plugin.fixtures import (  # noqa: F401  (fixtures are found by pytest through this module)
    edgehil_ab_energy,
    edgehil_analyzer,
    edgehil_bench,
    edgehil_dataset_root,
    edgehil_device_faults,
    edgehil_dut,
    edgehil_energy,
    edgehil_energy_plan,
    edgehil_model,
    edgehil_model_info,
    edgehil_pair,
    edgehil_pushed_inputs,
    edgehil_record,
    edgehil_session,
)
from pytest_edgehil.plugin.html_extras import add_html_extras, wants_html_extras
from pytest_edgehil.plugin.run import EdgeHILRun, duts_key, run_key
from pytest_edgehil.plugin.session import DEFAULT_BUDGETS, DEFAULT_LAB, INI_VALUES, build_session, in_use
from pytest_edgehil.plugin.short_errors import short_longrepr, wants_short

# Both stdlib-only (the option's help needs the default and the families, not the gate's statistics).
from pytest_edgehil.results.comparison import DEFAULT_FAIL_ON
from pytest_edgehil.results.vocabulary import Family, current_name

REPORTER_NAME = "edgehil-reporter"


def pytest_addoption(parser: pytest.Parser) -> None:
    # argparse %-formats option help: every literal % is written %%.
    group = parser.getgroup("edgehil", "edge hardware-in-the-loop (pytest-edgehil)")
    group.addoption("--lab", default=None, help=f"lab file (TOML) naming the devices; default {DEFAULT_LAB} "
                                                "or, without it, the simulated bench")
    group.addoption("--device", default=None, help="device name(s) from the lab, comma-separated, or 'all'")
    group.addoption("--model", default=None, help="model name(s) from the catalog, or PATH.tflite, comma-separated")
    group.addoption("--backend", default=None, choices=["sim", "hw"], help="force simulated twins or real hardware")
    group.addoption("--budgets", default=None,
                    help=f"budget table (TOML), layered over {DEFAULT_BUDGETS} and the edgehil_budgets ini "
                         "table: its entries add pairs or replace single limits (docs/budgets.md)")
    group.addoption("--budgets-only", action="store_true", default=False,
                    help="read the --budgets table alone, without layering it over the shipped one")
    group.addoption("--dataset-root", default=None, help="root of a public dataset (e.g. CHASE_DB1)")
    group.addoption("--edgehil-seed", type=int, default=0, help="seed of the simulated twins' jitter and noise")
    group.addoption("--analyzer", default=None, help="VISA resource of the power analyzer, overriding the lab file")
    group.addoption("--edgehil-save", default=None, metavar="PATH",
                    help="write the results file (JSON) here; records are journaled as they are measured")
    group.addoption("--edgehil-history", default=None, metavar="PATH|off",
                    help="history store (SQLite) the finished run is added to, for `edgehil report` trends and "
                         "`edgehil compare` baselines; default $EDGEHIL_HISTORY, else ini edgehil_history, else "
                         "edgehil-history.sqlite under the rootdir; 'off': none")
    group.addoption("--edgehil-baseline", default=None, metavar="PATH",
                    help="results file, or a directory of them (one per session; >= 5 let the gate measure "
                         "the between-session drift), to gate against: fail the run on significant regressions")
    group.addoption("--edgehil-fail-on", default=None, metavar="FAMILY:PCT,…",
                    help=f"regressions that fail the gate (default {DEFAULT_FAIL_ON.replace('%', '%%')}); "
                         f"families: {', '.join(f.value for f in Family)}; add 'missing' or 'unknown' to "
                         "make those verdicts fail too")
    group.addoption("--edgehil-ab", default=None, metavar="DIR|git:REV",
                    help="same-session A/B: measure each pair's model interleaved with its baseline (the "
                         ".tflite of the same name in DIR, or as committed at git revision REV) on the same "
                         "board, and gate on the paired rounds (suites/test_ab.py)")
    group.addoption("--edgehil-allow", default=None, metavar="KIND,…",
                    help="gate input problems that do not fail the run: incomplete, empty, failed-tests, "
                         "model-changed, duplicates")
    group.addoption("--edgehil-session-drift", default=None, metavar="PCT",
                    help="between-session drift sigma assumed when the baseline holds one session "
                         "(default 1.5%%); a directory of >= 5 baseline sessions measures it instead")
    for name, (help_text, default) in INI_VALUES.items():
        parser.addini(name, help_text, default=default)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "edgehil_metrics(*metrics, unbudgeted=False): parametrize over the "
                                       "model/device pairs whose budget has any of these metrics")
    run = EdgeHILRun(build_session=lambda: _build_or_usage_error(config), in_use=in_use(config))
    run.lock_timeout_s = _seconds_ini(config, "edgehil_lock_timeout")
    run.twin_realtime = _seconds_ini(config, "edgehil_twin_realtime")
    for name in COUNT_INIS:  # read by fixtures and suites later: a bad count fails here, once, not per test
        _count_ini(config, name)
    run.on_lock_wait = _lock_wait_notifier(config)
    run.lock_owner = " ".join(["pytest", *map(str, config.invocation_params.args)])
    if run.in_use:
        run.session  # noqa: B018 - build and validate now: a bad lab or option fails at start-up
        _group_hardware_by_device(config, run)
    config.stash[run_key] = run
    config.pluginmanager.register(EdgeHILReporter(run), REPORTER_NAME)
    if run.in_use:
        from pytest_edgehil.plugin.gate import register as register_gate
        from pytest_edgehil.plugin.worker_signals import register as register_worker_signals

        register_gate(config, run)
        register_worker_signals(config)  # a cancelled job's workers release what they hold (labgrid places)


COUNT_INIS = ("edgehil_latency_runs", "edgehil_energy_windows", "edgehil_energy_runs")


def _count_ini(config: pytest.Config, name: str) -> int | None:
    """A whole number >= 1 from the ini (None when unset); a bad value fails at start-up."""
    raw = str(config.getini(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"pytest-edgehil: ini value {name} = {raw!r} must be a whole number >= 1")
    return int(raw)


def _seconds_ini(config: pytest.Config, name: str) -> float:
    """A non-negative number of seconds (or factor) from the ini; a bad value fails at start-up."""
    raw = str(config.getini(name) or "0").strip()
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise pytest.UsageError(f"pytest-edgehil: ini value {name} = {raw!r} must be a finite number >= 0")
    return value


def _lock_wait_notifier(config: pytest.Config) -> Callable[[str], None]:
    """Shows a bring-up waiting for a busy board on the terminal, past output capture, and in the log."""
    log = logging.getLogger("pytest_edgehil.locks")

    def notify(message: str) -> None:
        log.warning(message)
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is None or hasattr(config, "workerinput"):  # a worker's terminal is nobody's
            return
        with capture.global_and_fixture_disabled():
            config.get_terminal_writer().line(f"edgehil: {message}", yellow=True)

    return notify


def _group_hardware_by_device(config: pytest.Config, run: EdgeHILRun) -> None:
    """Under pytest-xdist, keep each device's tests on one worker: `-n N` alone means `--dist load`, which
    would send one board's tests to two workers (the second then finds it busy). For a lab with real
    boards, `load` becomes `loadgroup` (the pair items carry `xdist_group(device)`); twins are private to
    each worker, so simulated runs keep the distribution asked for."""
    if getattr(config.option, "dist", "no") != "load" or hasattr(config, "workerinput"):
        return
    s = run.session
    if any(not s.lab.devices[name].simulated for name in s.devices):
        config.option.dist = "loadgroup"


def _build_or_usage_error(config: pytest.Config) -> EdgeHILSession:
    try:
        return build_session(config)
    except EdgeHILError as exc:
        raise pytest.UsageError(f"pytest-edgehil: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(run_key, None)
    reporter = config.pluginmanager.get_plugin(REPORTER_NAME)
    if reporter is not None:
        config.pluginmanager.unregister(reporter)
    if run is not None:
        run.close_bench()


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash[run_key]
    if not run.in_use:
        return []
    s = run.session
    where = s.lab.path or "built-in simulated bench"
    return [(f"edgehil: {s.backend_label} — lab {s.lab.name!r} ({where}); devices: {', '.join(s.devices)}; "
            f"{len(s.budgets)} budget entries")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only tests marked edgehil_metrics are parametrized; any other test asking for an edgehil fixture gets
    # the error of the `edgehil_pair` fixture, saying how to mark it.
    marker = metafunc.definition.get_closest_marker("edgehil_metrics")
    if marker is None or "edgehil_pair" not in metafunc.fixturenames:
        return
    s = metafunc.config.stash[run_key].session
    metrics = tuple(current_name(m) for m in marker.args)  # an old name (model_kb) selects its new one
    unbudgeted = bool(marker.kwargs.get("unbudgeted", False))
    pairs = [p for p in s.pairs if (not metrics or p.has_any(metrics)) or (p.budget is None and unbudgeted)]
    if not pairs:
        # One skipped item that says why, instead of pytest's "got empty parameter set".
        metafunc.parametrize("edgehil_pair", [pytest.param(None, marks=pytest.mark.skip(
            reason=_no_pairs_reason(s, metrics, unbudgeted)), id="no-pair")])
        return
    metafunc.parametrize("edgehil_pair", pairs, ids=[p.id for p in pairs])


def _no_pairs_reason(s: EdgeHILSession, metrics: tuple[str, ...], unbudgeted: bool) -> str:
    wanted = ", ".join(metrics) or "any metric"
    if not s.budgets:
        where = "no budget table was found" + (" and no --model PATH.tflite was given" if unbudgeted else "")
        return (f"edgehil: no model/device pair to run ({where}); pass --budgets PATH (or ini edgehil_budgets), "
                "or run `edgehil init` to write the reference budgets and suites")
    without = ", or measure a model without a budget with --model PATH.tflite" if unbudgeted else ""
    # Entries that have the limit but are for kinds the lab has no device of: name them, since "add a limit"
    # would send the user to write one that exists. (A kind the lab has can still pair with nothing, e.g. an
    # eembc firmware with another model compiled in: the general message then.)
    elsewhere = [b for b in s.budgets if any(m in b.limits for m in metrics)]
    lab_kinds = {d.kind for d in s.lab.devices.values()}
    if elsewhere and not any(b.device_kind in lab_kinds for b in elsewhere):
        kinds = sorted({b.device_kind for b in elsewhere})
        return (f"edgehil: no pair in lab {s.lab.name!r} has a limit for {wanted}: the budget entries that do "
                f"({', '.join(b.id for b in elsewhere)}) are for device kinds the lab lacks ({', '.join(kinds)}; "
                f"its devices: {', '.join(s.lab.devices)}); add such a device to the lab, or a [[budget]] entry "
                f"with this limit for a kind it has{without}")
    return (f"edgehil: no pair in the {len(s.budgets)} budget entries has a limit for {wanted}; add a limit for one "
            f"of these metrics to a [[budget]] entry{without}")


@pytest.hookimpl(tryfirst=True)  # before xdist's worker hook, which names loadgroup items by their group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = config.stash[run_key]
    if not run.session_built:
        return  # nothing was parametrized over pairs
    from pytest_edgehil.config.pairs import Pair, is_selected

    s = run.session
    group = config.pluginmanager.hasplugin("xdist")  # `--dist loadgroup` keeps a device's tests on one worker
    keep, deselected = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        pair = callspec.params.get("edgehil_pair") if callspec else None
        if isinstance(pair, Pair) and not is_selected(pair, s.devices, s.models):
            deselected.append(item)
        else:
            if isinstance(pair, Pair) and group:
                item.add_marker(pytest.mark.xdist_group(pair.device))
            keep.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep
    run.unmeasured = _unmeasured_line(s, items)
    if hasattr(config, "workerinput"):  # the controller prints it: it collects nothing itself under xdist
        config.workeroutput[UNMEASURED_KEY] = run.unmeasured  # type: ignore[attr-defined]


UNMEASURED_KEY = "edgehil_unmeasured"


def _unmeasured_line(s: EdgeHILSession, items: list[pytest.Item]) -> str:
    """The line naming limits of the selected pairs that no collected test measures (plugin/unmeasured.py),
    or "" (also when no edgehil test was collected: a project's unit tests are no budget run)."""
    from pytest_edgehil.config.pairs import Pair, is_selected
    from pytest_edgehil.plugin.unmeasured import unmeasured_limits, unmeasured_line

    marked, edgehil_tests = [], False
    for item in items:
        marker = item.get_closest_marker("edgehil_metrics")
        if marker is None:
            continue
        edgehil_tests = True  # also a test no pair has a limit for (its one skipped "no-pair" item)
        callspec = getattr(item, "callspec", None)
        pair = callspec.params.get("edgehil_pair") if callspec else None
        if isinstance(pair, Pair):
            marked.append((pair, tuple(current_name(m) for m in marker.args)))
    if not edgehil_tests:
        return ""
    found = unmeasured_limits([p for p in s.pairs if is_selected(p, s.devices, s.models)], marked)
    return unmeasured_line(found) if found else ""


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, on the controller
def pytest_testnodedown(node: Any, error: object) -> None:
    """A worker's line of unmeasured limits (each worker collects the same items: the last one stands)."""
    line = getattr(node, "workeroutput", {}).get(UNMEASURED_KEY, "")
    run = node.config.stash.get(run_key, None)
    if line and run is not None:
        run.unmeasured = line


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: only called when xdist is installed and schedules
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadgroup`: one group per device for the pair items (docs/sharing-a-lab.md)."""
    run = config.stash.get(run_key, None)
    if run is None or not run.session_built or config.getvalue("dist") != "loadgroup":
        return None  # xdist's own scheduler
    from pytest_edgehil.plugin.xdist_groups import DeviceGroupScheduling, pair_devices

    return DeviceGroupScheduling(config, log, pair_devices=pair_devices(run.session.pairs))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.excinfo is not None and wants_short(item.config):
        short = short_longrepr(item, call.excinfo)
        if short is not None:
            report.longrepr = short  # the typed error's message, not our frames (plugin/short_errors.py)
    if report.when == "call" and wants_html_extras(item.config):
        add_html_extras(item, report)  # pytest-html: the value table and the trace image of this test
    if report.failed:
        for dut in item.stash.get(duts_key, []):
            report.sections.append((f"serial traffic {dut.name} ({dut.port})", dut.traffic.text()))
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    # Every result line of an edgehil test says which bench produced it.
    # Every result line of an edgehil test says which bench produced it, and (with -v) the value nearest
    # its limit: `PASSED inference_ms 0.859 ms vs ≤ 0.886 ms (+3.0%) [SIMULATED]`.
    run = config.stash.get(run_key, None)
    if run is not None and report.when == "call" and any(k == "edgehil" for k, _ in report.user_properties):
        from pytest_edgehil.results.records import records_from_properties
        from pytest_edgehil.results.terminal import result_word

        records = records_from_properties(report.user_properties)
        label = run.session.backend_label
        if report.passed:
            return "passed", ".", result_word("passed", records, label)
        if report.failed:
            return "failed", "F", result_word("failed", records, label)
    return None


class EdgeHILReporter:
    """Collects each test's records into the run (the one place reports are read) and prints the summary
    table (nothing when no test recorded anything)."""

    def __init__(self, run: EdgeHILRun) -> None:
        self.run = run

    @pytest.hookimpl(tryfirst=True)  # before any listener-less reader looks at the run
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.run.collect(report)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        records = self.run.records
        if not records:
            self._write_unmeasured(terminalreporter)
            return
        from pytest_edgehil.results.summary import summary_lines
        from pytest_edgehil.results.terminal import latency_split_lines

        terminalreporter.write_sep("=", f"edgehil summary ({self.run.session.backend_label})")
        origins = [t.nodeid for t in self.run.tests for _ in t.records]  # `run.records`' order: each row's test
        for line in summary_lines(records, origins):
            terminalreporter.write_line(line)
        split = latency_split_lines(records)
        if split:
            terminalreporter.write_line("")
            terminalreporter.write_line("latency split (median of each stage; the total is the measured end to end):")
            for line in split:
                terminalreporter.write_line(f"  {line}")
        for line in self._not_selected_lines():
            terminalreporter.write_line(line)
        if self.run.session_built:
            from pytest_edgehil.bring_up import unchecked_serial_lines

            for line in unchecked_serial_lines(records, self.run.session.lab):
                terminalreporter.write_line(line)
        self._write_unmeasured(terminalreporter)

    def _write_unmeasured(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.run.unmeasured:
            terminalreporter.write_line(self.run.unmeasured, yellow=True)

    def _not_selected_lines(self) -> list[str]:
        """One line per reason the --device/--model selection left budgeted pairs out, naming them."""
        if not self.run.session_built:
            return []
        from pytest_edgehil.config.pairs import why_not_selected

        s = self.run.session
        by_reason: dict[str, list[str]] = {}
        for pair in s.pairs:
            reason = why_not_selected(pair, s.devices, s.models)
            if reason is not None:
                by_reason.setdefault(reason, []).append(pair.id)
        return [f"edgehil: not run ({reason}): {', '.join(ids)}" for reason, ids in by_reason.items()]
