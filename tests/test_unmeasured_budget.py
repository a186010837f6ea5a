"""A budgeted limit that no test measures must not pass in silence.

Seen from outside (a lab engineer's own budget table): `parameters = { max = 500 }` and `macs = { max = 100 }`
on a model with 2,809 parameters and 9.84 M MACs ran the footprint suite, printed nothing about either
limit and exited 0; so did `top5 = { min = 0.9 }` with no test recording `top5`. The expected figures come
from the model card (the Keras counts the model was built with), not from the analysis under test.
"""

from __future__ import annotations

import json

import pytest

from .conftest import MODELS, REPO

CARD = json.loads((MODELS / "qsegment.json").read_text(encoding="utf-8"))


def _project(pytester: pytest.Pytester, limits: str, *suites: str) -> pytest.Pytester:
    (pytester.path / "budgets.toml").write_text(
        f'[[budget]]\nmodel = "qsegment"\ndevice = "coral"\n[budget.limits]\n{limits}\n', encoding="utf-8")
    pytester.makeini(f"""
        [pytest]
        edgehil_models_dir = {MODELS}
        edgehil_budgets = budgets.toml
        edgehil_latency_runs = 10
    """)
    for suite in suites:
        pytester.makepyfile(**{suite: (REPO / "suites" / f"{suite}.py").read_text(encoding="utf-8")})
    return pytester


def test_parameters_and_macs_limits_are_checked_by_the_footprint_suite(pytester: pytest.Pytester) -> None:
    params, macs = CARD["parameters"], CARD["macs"]
    project = _project(pytester, f"parameters = {{ max = {params - 1} }}\nmacs = {{ max = {macs * 2} }}",
                       "test_footprint")
    result = project.runpytest("--device=coral", "-p", "no:cacheprovider", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    out = result.stdout.str()
    assert f"parameters = {params:,}" in out or f"parameters = {params}" in out, out[-3000:]
    assert f"≤ {params - 1}" in out, out[-3000:]


def _unmeasured(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if "measured by no collected test" in line]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_a_budgeted_metric_no_collected_test_measures_is_named(pytester: pytest.Pytester, workers: list[str]) -> None:
    project = _project(pytester, "model_kib = { max = 100.0 }\ntop5 = { min = 0.9 }", "test_footprint")
    result = project.runpytest("--device=coral", "-p", "no:cacheprovider", *workers)
    lines = _unmeasured(result)
    assert len(lines) == 1 and "qsegment-coral top5" in lines[0], result.stdout.str()[-3000:]
    # model_kib is measured (the footprint suite is collected): it is not named.
    assert "model_kib" not in lines[0]


def test_a_pair_none_of_whose_limits_is_measured_is_named(pytester: pytest.Pytester) -> None:
    """No test runs at all for the pair (its only limit is top5): the line comes without a summary table."""
    project = _project(pytester, "top5 = { min = 0.9 }", "test_footprint")
    (project.path / "test_top1.py").write_text(
        "import pytest\n\n@pytest.mark.edgehil_metrics('top1')\ndef test_top1(edgehil_record):\n"
        "    edgehil_record.check('top1', 1.0)\n", encoding="utf-8")
    result = project.runpytest("--device=coral", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    lines = _unmeasured(result)
    assert len(lines) == 1 and "qsegment-coral top5" in lines[0], result.stdout.str()[-3000:]


def test_a_run_of_tests_without_edgehil_marks_says_nothing(pytester: pytest.Pytester) -> None:
    """A project's own unit tests beside a budget table are no budget run: no line."""
    project = _project(pytester, "top5 = { min = 0.9 }")
    (project.path / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n", encoding="utf-8")
    result = project.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert not _unmeasured(result), result.stdout.str()
