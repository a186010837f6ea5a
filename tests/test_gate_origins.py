"""Which record the gate compares where a run holds one pair's metric more than once (results/gate_origins.py).

Before: "the first" of the run's records, and that order is the order tests finished in. Two tests that
measure one pair's energy differently (another window) had one of them never compared: a regression of
the second test's figure passed the gate. Now such a pair × metric is compared test by test, and each
verdict names its test. The figures expected here are numpy medians of the samples given, not the gate's.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.cli import EXIT_OK, EXIT_REGRESSION, main
from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, GateStatus, compare_results
from pytest_edgehil.results.records import ab_context

from .conftest import MODELS, REPO
from .test_gate import record
from .test_gate_ab import project, run_ab, shipped_baseline

DEFAULT = FailOn.parse(DEFAULT_FAIL_ON)
LOOP = "suites/test_energy.py::test_inference_energy[qsegment-imx500]"
WINDOW = "suites/test_window.py::test_window_energy[qsegment-imx500]"
AB = "suites/test_ab.py::test_ab_inference_energy[qsegment-imx500]"
SPREAD = np.linspace(0.99, 1.01, 30)  # deterministic samples: no seed decides a verdict here


def energy(test: str, scale: float):
    return replace(record("inference_mj", SPREAD * scale), test=test)


@pytest.mark.parametrize("order", [1, -1])
def test_two_tests_of_one_pair_metric_are_compared_test_by_test(order: int) -> None:
    base = [energy(LOOP, 0.011), energy(WINDOW, 0.016)][::order]
    new = [energy(LOOP, 0.011), energy(WINDOW, 0.016 * 1.5)][::order]  # the window test's figure rose 50 %
    report = compare_results(base, new, DEFAULT)
    assert not report.passed, "whichever record comes first, the window test's +50 % must block"
    by_origin = {c.origin: c for c in report.comparisons}
    assert set(by_origin) == {LOOP, WINDOW}
    assert by_origin[WINDOW].base_value == pytest.approx(float(np.median(SPREAD * 0.016)))
    assert by_origin[WINDOW].new_value == pytest.approx(float(np.median(SPREAD * 0.016 * 1.5)))
    assert by_origin[WINDOW].status is GateStatus.REGRESSED and not report.passed
    assert by_origin[LOOP].status is GateStatus.SAME
    assert f"(from {WINDOW})" in by_origin[WINDOW].describe()
    header = re.split(r"\s{2,}", report.table_lines()[0])
    assert header[-1] == "from"


def test_a_test_the_baseline_lacks_is_new_not_compared_with_another_tests_figure() -> None:
    report = compare_results([energy(LOOP, 0.011)], [energy(WINDOW, 0.016), energy(LOOP, 0.011)], DEFAULT)
    by_origin = {c.origin: c for c in report.comparisons}
    assert set(by_origin) == {LOOP, WINDOW}
    assert by_origin[WINDOW].status is GateStatus.NEW
    assert by_origin[LOOP].status is GateStatus.SAME
    assert by_origin[LOOP].new_value == pytest.approx(float(np.median(SPREAD * 0.011)))
    assert any("more than one test" in note for note in report.duplicate_notes)


def test_equal_figures_from_two_tests_are_one_comparison() -> None:
    def kib(test: str):
        return replace(record("model_kib", value=616.2), test=test)

    report = compare_results([kib("a.py::test_file"), kib("a.py::test_card")],
                             [kib("a.py::test_file"), kib("a.py::test_card")], DEFAULT)
    assert [(c.metric, c.origin, c.status) for c in report.comparisons] == [("model_kib", "", GateStatus.SAME)]
    assert "from" not in re.split(r"\s{2,}", report.table_lines()[0])


def test_an_ab_record_beside_the_energy_suite_leaves_the_suite_compared_and_says_so() -> None:
    ab = replace(energy(AB, 0.020), context={**energy(AB, 0.020).context,
                                              **ab_context([[0.0199] * 3], [[0.020] * 3], baseline_sha256="b" * 64,
                                                           source="main")})
    report = compare_results([energy(LOOP, 0.011)], [ab, energy(LOOP, 0.011)], DEFAULT)
    (only,) = report.comparisons
    assert only.origin == LOOP
    assert only.new_value == pytest.approx(float(np.median(SPREAD * 0.011)))
    assert any(AB in note and "A/B gate" in note for note in report.duplicate_notes), report.duplicate_notes


def test_compare_on_an_ab_run_beside_the_energy_suite_names_the_compared_test(
        pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    project(pytester, MODELS / "qsegment.tflite")
    pytester.makepyfile(test_energy=(REPO / "suites" / "test_energy.py").read_text(encoding="utf-8"))
    models = pytester.path / "models" / "qsegment.tflite"
    base = pytester.path / "base.json"
    first = pytester.runpytest("test_energy.py", "--device=imx500", f"--model={models}", "-p", "no:cacheprovider",
                               f"--edgehil-save={base}")
    assert first.ret == pytest.ExitCode.OK
    main_models = shipped_baseline(pytester)
    new = pytester.path / "new.json"
    assert run_ab(pytester, str(main_models), f"--edgehil-save={new}").ret == pytest.ExitCode.OK
    saved = json.loads(Path(new).read_text(encoding="utf-8"))["records"]
    tests = {r["test"] for r in saved if r["pair"] == "qsegment-imx500" and r["metric"] == "inference_mj"}
    assert len(tests) == 2  # the A/B test's and the energy suite's
    capsys.readouterr()
    assert main(["compare", str(base), str(new), "--history", "off", "--json"]) in (EXIT_OK, EXIT_REGRESSION)
    data = json.loads(capsys.readouterr().out)
    (compared,) = [c for c in data["comparisons"] if c["pair"] == "qsegment-imx500" and c["metric"] == "inference_mj"]
    energy_test = next(t for t in tests if t.startswith("test_energy.py"))
    assert compared["origin"] == energy_test
    assert compared["new_value"] == pytest.approx(float(np.median(next(
        r["raw"] for r in saved if r["test"] == energy_test and r["metric"] == "inference_mj"))))
