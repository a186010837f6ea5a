"""A sample that is no number (NaN, ±inf: a division by a zero-length window, a dropped reading) cannot be
written as JSON, and the results file's reader refuses a `null` among samples: one such sample made the
run's whole results file unreadable ("regenerate it" — which writes the same). The test that recorded it
fails instead, naming the metric and the samples, and the file keeps every other record."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.results.store import load_results

SUITE = """
import pytest

@pytest.mark.edgehil_metrics("inference_ms", unbudgeted=True)
def test_one_bad_sample(edgehil_pair, edgehil_record):
    # `check` with the samples a value was computed from (README: "give `samples=` a list")
    edgehil_record.check("inference_ms", 0.86, samples=[0.85, float("{bad}"), 0.86, 0.87])

@pytest.mark.edgehil_metrics("end_to_end_ms", unbudgeted=True)
def test_sound(edgehil_pair, edgehil_record):
    edgehil_record.check_median("end_to_end_ms", [18.9, 19.0, 19.1])
"""


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_a_non_finite_sample_fails_its_test_and_the_results_file_still_loads(
        edgehil_project: pytest.Pytester, tmp_path: Path, bad: str) -> None:
    edgehil_project.makepyfile(test_samples=SUITE.format(bad=bad))
    saved = tmp_path / "run.json"
    result = edgehil_project.runpytest("--device=imx500", "--model=tinytracker", f"--edgehil-save={saved}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*inference_ms*1 of 4 samples*NaN or infinite*"])
    results = load_results(saved)
    assert [(r.metric, r.value) for r in results.records] == [("end_to_end_ms", 19.0)]
