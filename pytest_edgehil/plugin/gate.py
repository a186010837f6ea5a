"""The pytest side of results and the merge gate: `--edgehil-save`, `--edgehil-baseline` (a file or a directory
of sessions), `--edgehil-ab` (same-session A/B), `--edgehil-fail-on`, `--edgehil-allow`.

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
`edgehil_results_keep` (ini, default 200) run files there are deleted, and the run is added to the history
store (`--edgehil-history`, $EDGEHIL_HISTORY or ini `edgehil_history`; default edgehil-history.sqlite
beside edgehil-results/: `results/history.py`), which keeps it after its file is pruned. It decides in `pytest_sessionfinish` (it may raise the exit status from
0 to 1, never lower it), and prints the gate table in the terminal summary.

With `--junitxml`, `JUnitMetricProperties` (registered on workers too, where the items run) adds each
measured value as a test property `edgehil:<metric>` so Jenkins and GitLab show it per test case, and
writes every edgehil property as JSON (`results/junit.py`: samples counted, traces referenced).
"""

from __future__ import annotations

import signal
import threading
import warnings
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_edgehil.config.ab_source import BaselineModels
from pytest_edgehil.errors import ConfigError, EdgeHILError
from pytest_edgehil.plugin.run import EdgeHILRun, TestRecords, run_key
from pytest_edgehil.results.comparison import InputProblem
from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, GateReport, compare_ab, compare_sessions
from pytest_edgehil.results.gate_inputs import check_inputs, load_baseline, parse_allow
from pytest_edgehil.results.session_stats import ASSUMED_DRIFT_REL, parse_drift
from pytest_edgehil.results.store import (
    ResultRecord,
    ResultsFile,
    ResultsWriter,
    RunInfo,
    git_commit,
    new_run_id,
    prune_old_runs,
    utc_now,
)

GATE_PLUGIN_NAME = "edgehil-gate"
JUNIT_PLUGIN_NAME = "edgehil-junit-metrics"
JUNIT_PREFIX = "edgehil:"

__all__ = ["DEFAULT_FAIL_ON", "GatePlugin", "JUnitMetricProperties", "ab_source_key", "register"]

# The baseline models of `--edgehil-ab`, for the `edgehil_ab_energy` fixture (every process, workers too).
ab_source_key = pytest.StashKey[BaselineModels]()


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
        argv=[str(a) for a in config.invocation_params.args], run_id=new_run_id())


DEFAULT_RESULTS_DIR = "edgehil-results"  # one <run-id>.json per run, plus latest.json: a copy of the last written
LATEST_RESULTS = "latest.json"


def register(config: pytest.Config, run: EdgeHILRun) -> None:
    """Register the gate (save/baseline/A/B given, controller only) and the JUnit properties (--junitxml)."""
    if config.getoption("xmlpath", None) and not config.pluginmanager.has_plugin(JUNIT_PLUGIN_NAME):
        config.pluginmanager.register(JUnitMetricProperties(run), JUNIT_PLUGIN_NAME)
    save = config.getoption("--edgehil-save", None)
    baseline_opt = config.getoption("--edgehil-baseline", None)
    ab_opt = config.getoption("--edgehil-ab", None)
    try:
        fail_on = FailOn.parse(config.getoption("--edgehil-fail-on", None) or DEFAULT_FAIL_ON)
        allow = parse_allow(config.getoption("--edgehil-allow", None))
        drift = parse_drift(config.getoption("--edgehil-session-drift", None))
        if ab_opt:  # workers measure too: each process resolves the source
            config.stash[ab_source_key] = BaselineModels.parse(ab_opt)
        if _is_xdist_worker(config):
            return
        lazy, latest, prune, info = False, None, None, None
        if not save and run.session.pairs:
            info = run_info(config)
            # Every run that measures keeps its results, even when nobody asked to save them: in a file of
            # its own (two runs at once must not overwrite each other), with latest.json as the pointer.
            results_dir = config.rootpath / DEFAULT_RESULTS_DIR
            save, lazy, latest = str(results_dir / f"{info.run_id}.json"), True, results_dir / LATEST_RESULTS
            prune = (results_dir, _results_keep(config))
        if not (save or baseline_opt or ab_opt):
            return
        baseline_notes: list[str] = []  # runs of a baseline directory left out: not finished
        baseline = load_baseline(Path(baseline_opt), notes=baseline_notes) if baseline_opt else []
        info = info or run_info(config)
        # The history store is checked before the writer exists: a refusal at start-up must leave an
        # earlier run's results file at the --edgehil-save path as it was (the writer replaces it).
        history = _history_path(config) if save else None
        writer = ResultsWriter(Path(save), info, lazy=lazy, latest=latest) if save else None
        from pytest_edgehil.results.history_cli import DEFAULT_HISTORY

        history_named = history is not None and history != config.rootpath / DEFAULT_HISTORY
    except EdgeHILError as exc:
        raise pytest.UsageError(f"pytest-edgehil: {exc}") from None
    plugin = GatePlugin(info, fail_on=fail_on, writer=writer, baseline=baseline,
                        baseline_path=Path(baseline_opt) if baseline_opt else None, allow=allow,
                        baseline_notes=tuple(baseline_notes),
                        assumed_drift_rel=drift, ab_source=ab_opt, prune=prune, history=history,
                        history_named=history_named)
    run.listeners.append(plugin.add)
    config.pluginmanager.register(plugin, GATE_PLUGIN_NAME)


def _history_path(config: pytest.Config) -> Path | None:
    """Where the run is added when it finishes (`--edgehil-history`, $EDGEHIL_HISTORY, ini `edgehil_history`,
    else edgehil-history.sqlite under the rootdir; None: 'off'). A store that exists is checked now, so a
    foreign, damaged or newer one fails at start-up, not after the run; a missing one is made at the end."""
    from pytest_edgehil.results.history import History  # sqlite3: only for runs that save
    from pytest_edgehil.results.history_cli import choose_history

    path = choose_history(config.getoption("--edgehil-history", None), ini=config.getini("edgehil_history"),
                          root=config.rootpath, create=True)
    if path is not None and path.exists():
        History(path).close()
    return path


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
                 baseline: list[ResultsFile], baseline_path: Path | None, allow: frozenset[str] = frozenset(),
                 assumed_drift_rel: float = ASSUMED_DRIFT_REL, ab_source: str | None = None,
                 prune: tuple[Path, int] | None = None, history: Path | None = None,
                 history_named: bool = True, baseline_notes: tuple[str, ...] = ()) -> None:
        self.run = run
        self.baseline_notes = baseline_notes
        self.history = history  # the history store the finished run is added to; None: off
        self.history_error: str | None = None
        # Named by --edgehil-history, $EDGEHIL_HISTORY or ini edgehil_history (not the default beside the
        # checkout): only then does a failure to add the run fail the session.
        self.history_named = history is not None and history_named
        self.prune = prune  # (edgehil-results/, runs to keep): the default folder's retention
        self.fail_on = fail_on
        self.writer = writer
        self.baseline = baseline  # sessions, oldest first; empty without --edgehil-baseline
        self.baseline_path = baseline_path
        self.allow = allow
        self.assumed_drift_rel = assumed_drift_rel
        self.ab_source = ab_source
        self.records: list[ResultRecord] = []
        self.reports: list[tuple[str, GateReport]] = []  # (title, report): cross-session and/or A/B
        self.write_error: str | None = None  # the file stopped being updated; the run fails at the end
        self.terminated = False  # SIGTERM arrived: the run is saved as incomplete
        self._previous_sigterm: Any = None

    @property
    def report(self) -> GateReport | None:
        return self.reports[0][1] if self.reports else None

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

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # SIGTERM (a CI job cancelled, `kill`) would end the process without a word: turn it into what
        # Ctrl-C is, so pytest unwinds, the results file is stamped `complete: false`, and the bench closes.
        # Only where nobody else handles it, and only from the main thread (Python's rule for handlers).
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.terminated = True
        raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        interrupted = self.terminated or session.exitstatus == pytest.ExitCode.INTERRUPTED
        new = ResultsFile(run=self.run, records=self.records)
        if self.baseline:
            report = compare_sessions([b.records for b in self.baseline], self.records, self.fail_on,
                                      base_run=self.baseline[-1].run, new_run=self.run,
                                      assumed_drift_rel=self.assumed_drift_rel,
                                      base_sources=[str(b.path or "") for b in self.baseline])
            inputs = check_inputs(self.baseline, new, self.allow, check_new_run=False)
            sessions = f" ({len(self.baseline)} sessions)" if len(self.baseline) > 1 else ""
            self.reports.append((f"edgehil gate vs baseline {self.baseline_path}{sessions}",
                                 replace(report, inputs=tuple(inputs),
                                         run_flags=(*self.baseline_notes, *report.run_flags))))
        if self.ab_source is not None:
            report = compare_ab(self.records, self.fail_on)
            inputs = [] if report.comparisons else [InputProblem(
                "empty", f"--edgehil-ab {self.ab_source}: no A/B measurement was made (select suites/test_ab.py "
                         "and budgeted pairs, e.g. pytest suites/ --device=NAME --edgehil-ab=...)",
                "empty" not in self.allow)]
            self.reports.append((f"edgehil A/B gate: candidate vs {self.ab_source}, same session",
                                 replace(report, inputs=tuple(inputs))))
        # Raise, never lower: a run that already failed (or was interrupted) keeps its status.
        if any(not r.passed for _, r in self.reports) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.writer is not None and self.write_error is None:
            try:
                self.writer.finish(int(session.exitstatus), complete=not interrupted)
                if self.prune is not None and self.writer.results.records:
                    prune_old_runs(*self.prune)
            except EdgeHILError as exc:
                self.write_error = str(exc)
            except OSError as exc:  # pruning is housekeeping: say so, never fail a measured run for it
                warnings.warn(f"pytest-edgehil: could not prune old results in {self.prune}: {exc}", stacklevel=1)
        if self.write_error is None and self.writer is not None and self.writer.results.records:
            self._add_to_history()
        # A store the user named must take the run; the default one beside the checkout is a convenience
        # (a read-only checkout, a full disk): its failure is said, the run's verdict is not changed.
        history_fails = self.history_error is not None and self.history_named
        if (self.write_error or history_fails) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _add_to_history(self) -> None:
        """The finished run into the history store, in one transaction (a run killed before this point is
        added when a report or `edgehil history import` is pointed at its results file)."""
        if self.history is None or self.writer is None:
            return
        from pytest_edgehil.results.history import History

        try:
            with History(self.history) as history:
                history.add_written(self.writer.results, self.writer.path)
        except EdgeHILError as exc:
            self.history_error = (f"{exc} (the run is safe in {self.writer.path}: `edgehil history import "
                                  f"--history {self.history} {self.writer.path}` adds it once the store is fixed)")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for title, report in self.reports:
            terminalreporter.write_sep("=", title)
            for line in report.table_lines():
                terminalreporter.write_line(line)
            for line in report.detail_lines():
                terminalreporter.write_line(line, red=line.startswith("FAIL"), yellow=not line.startswith("FAIL"))
            terminalreporter.write_line(report.headline(), bold=True, red=not report.passed, green=report.passed)
        if self.history_error is not None:
            terminalreporter.write_sep("=", f"edgehil history: {self.history_error}", red=self.history_named,
                                       yellow=not self.history_named)
        if self.write_error is not None:
            terminalreporter.write_sep("=", f"edgehil results: {self.write_error}", red=True)
        elif self.writer is not None and self.writer.results.records:
            saved = f"edgehil results: {self.writer.path} ({len(self.writer.results.records)} records)"
            if self.reports:
                terminalreporter.write_line(saved)
            else:
                terminalreporter.write_sep("-", saved)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
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
