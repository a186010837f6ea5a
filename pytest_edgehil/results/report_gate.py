"""The top of the report: "what changed and is it OK?" — the gate's verdicts on the newest run against
the run before it, and what changed under the numbers (model, firmware, instrument, commit).

The verdicts are `results.gate.compare_results`' own (`GateReport`/`Comparison` from `comparison.py`),
rendered generically: the headline, then every comparison that is not SAME with its status and its own
sentence (`Comparison.describe`), so a field the gate adds reaches the page without a change here.
The fail-on thresholds are the gate's defaults (`DEFAULT_FAIL_ON`), as `edgehil compare` uses them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from html import escape
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from pytest_edgehil.results.comparison import DEFAULT_FAIL_ON, FailOn, GateReport, GateStatus
from pytest_edgehil.results.report_runs import ResultsRun

if TYPE_CHECKING:
    from pytest_edgehil.results.store import ResultsFile

GATE_CSS = """
.gate{border:1px solid #d8dde3;border-radius:.3rem;padding:.5rem .8rem;margin:.6rem 0}
.gate.failed{border-color:#c0392b;background:#fdf1ef} .gate.passed{border-color:#5a9e6f;background:#f1f9f3}
.gate .headline{font-weight:600;margin:.1rem 0 .4rem} .gate ul{margin:.2rem 0;padding-left:1.1rem;font-size:.82rem}
.gate .status{display:inline-block;min-width:6.5rem;margin-right:.5rem;font-weight:700;font-size:.72rem}
.gate .REGRESSED{color:#a02418} .gate .IMPROVED{color:#145a2a} .gate .UNKNOWN,.gate .MISSING{color:#7a5200}
.gate .NEW{color:#3b2a7a} .changes li{font-family:monospace;font-size:.8rem}
"""

_ORDER = (GateStatus.REGRESSED, GateStatus.UNKNOWN, GateStatus.MISSING, GateStatus.IMPROVED, GateStatus.NEW)


def gate_report(baseline: ResultsRun, newest: ResultsRun) -> GateReport:
    """The gate's comparison of the two runs, at the default fail-on thresholds, with the input problems
    `edgehil compare` names (a run that did not finish, no records, failed tests): the report's verdict is
    the command's, never "passed" on a killed run."""
    from pytest_edgehil.results.gate import compare_results  # scipy: only when a report compares runs
    from pytest_edgehil.results.gate_inputs import check_inputs

    report = compare_results(baseline.records, newest.records, FailOn.parse(DEFAULT_FAIL_ON), base_source=baseline.source)
    return dataclasses.replace(report, inputs=tuple(check_inputs([_as_input(baseline)], _as_input(newest))))


def _as_input(run: ResultsRun) -> ResultsFile:
    """What `check_inputs` reads of a results file, from the report's run (its A/A model check needs the
    git state, which the report does not keep: treated as dirty, so that check is left to `compare`)."""
    header = SimpleNamespace(complete=run.complete, started_at=run.label, git_commit=run.git_commit,
                             git_dirty=True)
    return cast("ResultsFile", SimpleNamespace(records=run.records, path=run.source, run=header))


def changes(baseline: ResultsRun, newest: ResultsRun) -> list[str]:
    """What differs under the numbers: the commit, pytest-edgehil, and per pair the measurement context
    the gate flags (model SHA-256, firmware, protocol, sample interval, instrument)."""
    from pytest_edgehil.results.gate import context_flags

    lines = []
    if baseline.git_commit != newest.git_commit:
        lines.append(f"commit {baseline.git_commit or '?'} → {newest.git_commit or '?'}")
    if baseline.edgehil_version != newest.edgehil_version:
        lines.append(f"pytest-edgehil {baseline.edgehil_version} → {newest.edgehil_version}")
    base_first = {r.pair: r for r in reversed(baseline.records)}
    for pair, new in sorted({r.pair: r for r in reversed(newest.records)}.items()):
        if pair in base_first:
            lines += [f"{pair}: {flag}" for flag in context_flags(base_first[pair], new)]
    return lines


def gate_html(runs: Sequence[ResultsRun]) -> str:
    """The section for runs ordered oldest first: the newest against the one before it."""
    if len(runs) < 2:
        return ('<p class="note">No gate verdicts: the gate compares the newest run with the one before it; pass '
                "two or more results files (or night directories) to `edgehil report`.</p>")
    baseline, newest = runs[-2], runs[-1]
    report = gate_report(baseline, newest)
    items = [c for status in _ORDER for c in report.comparisons if c.status is status]
    items.sort(key=lambda c: not c.blocking)  # stable: blocking first, then by attention order
    rows = "".join(f'<li><span class="status {c.status.value}">{c.status.value}{" ✗ blocks" if c.blocking else ""}'
                   f"</span>{escape(c.describe())}</li>" for c in items)
    same = report.count(GateStatus.SAME)
    problems = [f"{'FAIL ' if i.blocking else ''}{i.describe()}" for i in report.inputs]
    notes = "".join(f"<li>{escape(text)}</li>" for text in (*problems, *report.run_flags, *report.duplicate_notes))
    changed = changes(baseline, newest)
    change_html = (f'<p>What changed between the runs:</p><ul class="changes">'
                   f'{"".join(f"<li>{escape(line)}</li>" for line in changed)}</ul>' if changed else
                   "<p>Model, firmware and instrument: unchanged between the runs (as recorded).</p>")
    return (f'<div class="gate {"passed" if report.passed else "failed"}" id="gate">'
            f'<p class="headline">{escape(report.headline())}</p>'
            f'<p class="note">newest run {escape(newest.label)} against the run before it, {escape(baseline.label)}; '
            f"{same} pair × metric{'s' if same != 1 else ''} SAME</p>"
            f'{f"<ul>{rows}</ul>" if rows else ""}{f"<ul>{notes}</ul>" if notes else ""}{change_html}</div>')
