"""The gate-direction case (tests/data/gate-direction, from /work/shared/cases): a user's budget with two
higher-is-better task metrics (`min` limits) and a test that records them, run through the real plugin
twice and compared by the real gate — in pytest and with `edgehil compare`."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_OK, EXIT_REGRESSION, main
from pytest_edgehil.results.comparison import DEFAULT_FAIL_ON
from pytest_edgehil.results.store import load_results

from .conftest import MODELS

CASE = Path(__file__).parent / "data" / "gate-direction"
# The defaults gate accuracy: the case's user passes no --edgehil-fail-on.
assert "accuracy:" in DEFAULT_FAIL_ON
WITHOUT_ACCURACY = ",".join(t for t in DEFAULT_FAIL_ON.split(",") if not t.startswith("accuracy:"))


@pytest.fixture
def case_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(f"""
        [pytest]
        edgehil_models_dir = {MODELS}
        edgehil_budgets = {CASE / "budgets.toml"}
    """)
    pytester.makepyfile(test_task_metrics=(CASE / "test_task_metrics.py").read_text(encoding="utf-8"))
    return pytester


def _run(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, top1: float, map50: float,
         *args: str) -> pytest.RunResult:
    monkeypatch.setenv("TOP1", str(top1))
    monkeypatch.setenv("MAP50", str(map50))
    return project.runpytest("--device=coral", "-p", "no:cacheprovider", *args)


def test_gate_direction_case_min_budget_metrics_regress_when_they_fall(
        case_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    base = case_project.path / "base.json"
    new = case_project.path / "new.json"
    baseline = _run(case_project, monkeypatch, 0.72, 0.40, f"--edgehil-save={base}")
    baseline.assert_outcomes(passed=2)
    saved = {r.metric: r for r in load_results(base).records}
    assert {m: (r.direction, r.family) for m, r in saved.items()} == {
        "top1": ("higher", "accuracy"), "map50": ("higher", "accuracy")}  # from the `min` limits

    candidate = _run(case_project, monkeypatch, 0.60, 0.45, f"--edgehil-save={new}", f"--edgehil-baseline={base}")
    candidate.assert_outcomes(passed=1, failed=1)  # top1 0.60 is also under its budget of ≥ 0.70
    candidate.stdout.fnmatch_lines([
        "*edgehil gate vs baseline*base.json*",
        "qsegment-coral  top1 * 0.72 * 0.6 * REGRESSED ✗ FAILS*",
        "qsegment-coral  map50 * 0.4 * 0.45 * IMPROVED*",
        "FAIL qsegment-coral top1: 0.72 → 0.6, ratio 0.833; 16.7% worse (higher is better; accuracy threshold 1%)*",
        "edgehil gate FAILED: 1 blocking (1 REGRESSED, 1 IMPROVED; *accuracy +1 %)",
    ])
    assert "FAIL qsegment-coral map50" not in candidate.stdout.str()

    # The same two files outside pytest: here the gate alone decides the exit status.
    capsys.readouterr()
    assert main(["compare", str(base), str(new)]) == EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "FAIL qsegment-coral top1" in out and "edgehil gate FAILED: 1 blocking" in out
    assert [line for line in out.splitlines() if " map50 " in line and "IMPROVED" in line]
    # The candidate's top1 test failed its budget (min 0.70): a named input verdict of its own.
    assert "FAIL INPUT FAILED-TESTS" in out and "test_top1" in out
    # Without accuracy in the families (and that failure allowed) the verdicts stand, but do not block.
    assert main(["compare", str(base), str(new), "--fail-on", WITHOUT_ACCURACY]) == EXIT_REGRESSION
    assert "FAIL INPUT FAILED-TESTS" in capsys.readouterr().out
    assert main(["compare", str(base), str(new), "--fail-on", WITHOUT_ACCURACY, "--allow", "failed-tests"]) == EXIT_OK
    assert [line for line in capsys.readouterr().out.splitlines()
            if " top1 " in line and "REGRESSED (not gated)" in line]


def test_gate_direction_case_rising_scores_pass_the_gate(
        case_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    base = case_project.path / "base.json"
    _run(case_project, monkeypatch, 0.72, 0.40, f"--edgehil-save={base}").assert_outcomes(passed=2)
    better = _run(case_project, monkeypatch, 0.80, 0.402, f"--edgehil-baseline={base}")
    better.assert_outcomes(passed=2)
    assert better.ret == 0
    better.stdout.fnmatch_lines(["qsegment-coral  top1 * IMPROVED*", "qsegment-coral  map50 * SAME*",
                                 "edgehil gate passed*"])
