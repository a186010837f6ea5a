"""The pytest side of results and the merge gate: `--edgehil-save`, `--edgehil-baseline`, `--edgehil-fail-on`.

`register(config, run)` is called from the main plugin's `pytest_configure` when edgehil is in use. It creates and registers the
`GatePlugin` only when `--edgehil-save` or `--edgehil-baseline` is given, and only on the controller
(never on an xdist worker: workers must not write shared files; their records reach the controller in
`report.user_properties`). Options are validated and the baseline is loaded at configure time, so a bad
threshold or an unreadable baseline fails at start-up, not after an hour on the bench.

The plugin listens to the run's one collection of records (`EdgeHILRun.collect`, fed by
`pytest_runtest_logreport`), appends each test's records to the results file's journal (O(1) per
record; the document is written whole when the run finishes: `results/store.py`). Without
`--edgehil-save` the file is `edgehil-results/<run-id>.json`, with `latest.json` beside it as a copy of
the last document written, so concurrent runs keep both files; when a run finishes, all but the newest
`edgehil_results_keep` (ini, default 200) run files there are deleted. It decides in `pytest_sessionfinish` (it may raise the exit status from
0 to 1, never lower it), and prints the gate table in the terminal summary.

With `--junitxml`, `JUnitMetricProperties` (registered on workers too, where the items run) adds each
measured value as a test property `edgehil:<metric>` so Jenkins and GitLab show it per test case, and
writes every edgehil property as JSON (`results/junit.py`: samples counted, traces referenced).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_edgehil.errors import ConfigError, EdgeHILError
from pytest_edgehil.plugin.run import EdgeHILRun, TestRecords, run_key
from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, GateReport, compare_results
from pytest_edgehil.results.store import (
    ResultRecord,
    ResultsFile,
    ResultsWriter,
    RunInfo,
    git_commit,
    load_results,
    new_run_id,
    prune_old_runs,
    utc_now,
)

GATE_PLUGIN_NAME = "edgehil-gate"
JUNIT_PLUGIN_NAME = "edgehil-junit-metrics"
JUNIT_PREFIX = "edgehil:"

__all__ = ["DEFAULT_FAIL_ON", "GatePlugin", "JUnitMetricProperties", "register"]


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def run_info(config: pytest.Config) -> RunInfo:
    """The run context for the results file, from the edgehil session built at configure time."""
    run = config.stash.get(run_key, None)
    session = run.session if run is not None else None
    commit, dirty = git_commit(config.rootpath)
    return RunInfo(
        started_at=utc_now(), backend=session.backend_label if session else "",
        git_commit=commit, git_dirty=dirty, seed=session.seed if session else None,
        lab=session.lab.name if session else "", devices=list(session.devices) if session else [],
        argv=[str(a) for a in config.invocation_params.args])


DEFAULT_RESULTS_DIR = "edgehil-results"  # one <run-id>.json per run, plus latest.json: a copy of the last written
LATEST_RESULTS = "latest.json"


def register(config: pytest.Config, run: EdgeHILRun) -> None:
    """Register the gate (save/baseline given, controller only) and the JUnit properties (--junitxml)."""
    if config.getoption("xmlpath", None) and not config.pluginmanager.has_plugin(JUNIT_PLUGIN_NAME):
        config.pluginmanager.register(JUnitMetricProperties(run), JUNIT_PLUGIN_NAME)
    save = config.getoption("--edgehil-save", None)
    baseline_opt = config.getoption("--edgehil-baseline", None)
    try:
        fail_on = FailOn.parse(config.getoption("--edgehil-fail-on", None) or DEFAULT_FAIL_ON)
        if _is_xdist_worker(config):
            return
        lazy, latest, prune = False, None, None
        if not save and run.session.pairs:
            # Every run that measures keeps its results, even when nobody asked to save them: in a file of
            # its own (two runs at once must not overwrite each other), with latest.json as the pointer.
            results_dir = config.rootpath / DEFAULT_RESULTS_DIR
            save, lazy, latest = str(results_dir / f"{new_run_id()}.json"), True, results_dir / LATEST_RESULTS
            prune = (results_dir, _results_keep(config))
        if not (save or baseline_opt):
            return
        baseline = load_results(Path(baseline_opt)) if baseline_opt else None
        info = run_info(config)
        writer = ResultsWriter(Path(save), info, lazy=lazy, latest=latest) if save else None
    except EdgeHILError as exc:
        raise pytest.UsageError(f"pytest-edgehil: {exc}") from None
    plugin = GatePlugin(info, fail_on=fail_on, writer=writer, baseline=baseline,
                        baseline_path=Path(baseline_opt) if baseline_opt else None, prune=prune)
    run.listeners.append(plugin.add)
    config.pluginmanager.register(plugin, GATE_PLUGIN_NAME)


def _results_keep(config: pytest.Config) -> int:
    """`edgehil_results_keep` as a count >= 1; ConfigError (a usage error at start-up) otherwise."""
    raw = str(config.getini("edgehil_results_keep") or "").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"ini value edgehil_results_keep = {raw!r} must be a whole number of runs >= 1 "
                          "(how many per-run results files edgehil-results/ keeps)")
    return int(raw)


class GatePlugin:
    """Lives on the controller: collects records, keeps the results file current, gates at the end."""

    def __init__(self, run: RunInfo, *, fail_on: FailOn, writer: ResultsWriter | None,
                 baseline: ResultsFile | None, baseline_path: Path | None,
                 prune: tuple[Path, int] | None = None) -> None:
        self.run = run
        self.prune = prune  # (edgehil-results/, runs to keep): the default folder's retention
        self.fail_on = fail_on
        self.writer = writer
        self.baseline = baseline
        self.baseline_path = baseline_path
        self.records: list[ResultRecord] = []
        self.report: GateReport | None = None
        self.write_error: str | None = None  # the file stopped being updated; the run fails at the end

    def add(self, test: TestRecords) -> None:
        """Called by the run for each test's records (its one collection, made from the call report)."""
        records = [ResultRecord.from_metric_record(r, test=test.nodeid, outcome=test.outcome)
                   for r in test.records]
        traces = list(test.traces)
        self.records.extend(records)
        if self.writer is not None and self.write_error is None:
            try:
                self.writer.add(records, traces)
            except EdgeHILError as exc:  # e.g. disk full: keep measuring, fail the run at the end
                self.write_error = str(exc)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.baseline is not None:
            self.report = compare_results(self.baseline.records, self.records, self.fail_on,
                                          base_run=self.baseline.run, new_run=self.run)
            # Raise, never lower: a run that already failed (or was interrupted) keeps its status.
            if not self.report.passed and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.writer is not None and self.write_error is None:
            try:
                self.writer.finish(int(session.exitstatus))
                if self.prune is not None and self.writer.results.records:
                    prune_old_runs(*self.prune)
            except EdgeHILError as exc:
                self.write_error = str(exc)
            except OSError as exc:  # pruning is housekeeping: say so, never fail a measured run for it
                warnings.warn(f"pytest-edgehil: could not prune old results in {self.prune}: {exc}", stacklevel=1)
        if self.write_error is not None and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.report is not None:
            terminalreporter.write_sep("=", f"edgehil gate vs baseline {self.baseline_path}")
            for line in self.report.table_lines():
                terminalreporter.write_line(line)
            for line in self.report.detail_lines():
                terminalreporter.write_line(line, red=line.startswith("FAIL"), yellow=not line.startswith("FAIL"))
            terminalreporter.write_line(self.report.headline(), bold=True, red=not self.report.passed,
                                        green=self.report.passed)
        if self.write_error is not None:
            terminalreporter.write_sep("=", f"edgehil results: {self.write_error}", red=True)
        elif self.writer is not None and self.writer.results.records:
            saved = f"edgehil results: {self.writer.path} ({len(self.writer.results.records)} records)"
            if self.report is not None:
                terminalreporter.write_line(saved)
            else:
                terminalreporter.write_sep("-", saved)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        config.pluginmanager.unregister(self)


class JUnitMetricProperties:
    """Copies each record's value into a plain test property (`edgehil:inference_mj` = value) for JUnit XML.

    Appended to `item.user_properties` before teardown, from the run's collection of the call report: the
    teardown report, which junitxml writes out, carries them; the call report (which the gate reads) does
    not, so nothing is counted twice.
    """

    def __init__(self, run: EdgeHILRun) -> None:
        self.run = run

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, Any, Any]:
        from pytest_edgehil.results.junit import dumps, record_property, trace_property
        from pytest_edgehil.results.records import TRACE_PROPERTY, USER_PROPERTY

        # The call report (read by the run and the gate) holds its own copy of the list; the teardown
        # report, which junitxml writes, gets JSON: records without their samples, traces as references.
        properties: list[tuple[str, object]] = []
        for key, value in item.user_properties:
            if key == USER_PROPERTY and isinstance(value, dict):
                value = record_property(value)
            elif key == TRACE_PROPERTY and isinstance(value, dict):
                value = trace_property(value, item.nodeid)
            properties.append((key, value))
        for record in self.run.records_for(item.nodeid):
            properties.append((f"{JUNIT_PREFIX}{record.metric}", dumps(record.value)))
        item.user_properties[:] = properties
        return (yield)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        config.pluginmanager.unregister(self)
