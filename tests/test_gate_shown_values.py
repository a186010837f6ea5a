"""The gate shows the figures its ratio divides.

Across sessions the gate divides session medians of the raw samples. A record whose value is another
statistic of its samples (the head A/B's `head_fps_ratio` was the geometric mean of its per-round ratios)
was shown as "value A → value B" beside a ratio of the medians: two figures that did not give the ratio
shown. The comparison now shows the medians it divides, and the head A/B records the median of its
per-round ratios as its value. Expected medians are computed here with the statistics module.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, compare_records
from pytest_edgehil.results.store import ResultRecord, load_results

from .latency_project import shipped_suite

BASE_ROUNDS = [1.0, 1.0, 1.0, 0.5]  # median 1.0, geometric mean 0.5 ** 0.25 = 0.841
NEW_ROUNDS = [0.9, 0.9, 0.9, 0.9]  # median and geometric mean 0.9


def ratio_record(rounds: list[float]) -> ResultRecord:
    geometric_mean = math.exp(statistics.fmean(math.log(r) for r in rounds))
    return ResultRecord(pair="lowres_seg-jetson-nano", model="lowres_seg", device="jetson-nano", kind="jetson-nano",
                        metric="head_fps_ratio", value=geometric_mean, unit="x", backend="SIMULATED", status="info",
                        raw=list(rounds), family="throughput", direction="higher")


def test_the_shown_values_are_the_medians_the_ratio_divides() -> None:
    comparison = compare_records(ratio_record(BASE_ROUNDS), ratio_record(NEW_ROUNDS), FailOn.parse(DEFAULT_FAIL_ON))
    base_median, new_median = statistics.median(BASE_ROUNDS), statistics.median(NEW_ROUNDS)
    assert comparison.ratio == pytest.approx(new_median / base_median)
    assert comparison.base_value == pytest.approx(base_median)
    assert comparison.new_value == pytest.approx(new_median)
    assert comparison.new_value / comparison.base_value == pytest.approx(comparison.ratio)


def test_the_head_ab_records_the_median_of_its_per_round_ratios(edgehil_project: pytest.Pytester,
                                                                 tmp_path: Path) -> None:
    shipped_suite(edgehil_project, "test_head_ab")
    saved = tmp_path / "results.json"
    result = edgehil_project.runpytest("--device=jetson-nano", f"--edgehil-save={saved}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    records = {r.metric: r for r in load_results(saved).records}
    ratio = records["head_fps_ratio"]
    assert ratio.raw and len(ratio.raw) >= 2
    assert ratio.value == pytest.approx(statistics.median(ratio.raw), rel=1e-12)
    assert ratio.ci_low is not None and ratio.ci_low <= ratio.value <= (ratio.ci_high or math.inf)
