"""Footprint figures are KiB (1024 bytes), and their name, unit label and budget say so.

The footprint suite divides byte counts by 1024. It recorded them as `model_kb` / `peak_activation_kb`
labelled "KB", next to a budget whose source compares the stand-in's "616 KiB" with TinyTracker's
"600 KB". The metrics are now `model_kib` / `peak_activation_kib` in "KiB"; a budget table or a baseline
results file with the old names still works: the old name is read as the new one (the figure was always
KiB), and a budget table using it is told to rename it. Expected figures here come from the file's size
on disk (os.stat) divided by 1024, not from the code under test.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_edgehil.config.budgets import budgets_from_data
from pytest_edgehil.errors import ConfigError, RenamedMetricWarning
from pytest_edgehil.results.gate import DEFAULT_FAIL_ON, FailOn, compare_results
from pytest_edgehil.results.store import ResultRecord, load_results
from pytest_edgehil.results.vocabulary import lookup

from .conftest import REPO

SUITE = (REPO / "suites" / "test_footprint.py").read_text()
TINYTRACKER = REPO / "fixtures" / "models" / "tinytracker.tflite"


def test_the_vocabulary_labels_the_footprint_metrics_kib() -> None:
    for metric in ("model_kib", "peak_activation_kib"):
        assert lookup(metric).unit == "KiB"
    assert lookup("flash_kib").unit == "KiB"  # a user's own metric by its suffix


def test_the_footprint_suite_records_kib_under_kib_names(edgehil_project: pytest.Pytester, tmp_path: Path) -> None:
    edgehil_project.makepyfile(test_footprint=SUITE)
    saved = tmp_path / "results.json"
    result = edgehil_project.runpytest("--device=imx500", "--model=tinytracker", f"--edgehil-save={saved}",
                                       "-k", "fits", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    records = {r.metric: r for r in load_results(saved).records}
    assert "model_kb" not in records and "peak_activation_kb" not in records, sorted(records)
    size = records["model_kib"]
    assert size.value == pytest.approx(os.stat(TINYTRACKER).st_size / 1024)
    assert size.unit == "KiB" and records["peak_activation_kib"].unit == "KiB"
    # The shipped budget compares it with TinyTracker's 600 KB (read as KiB) under the new name.
    assert size.published == 600.0 and size.status in {"pass", "marginal"}, size


def budget_table(limits: dict[str, object]) -> dict[str, object]:
    return {"budget": [{"model": "tinytracker", "device": "imx500", "limits": limits}]}


def test_a_budget_with_the_old_name_is_read_as_kib_and_told_to_rename(tmp_path: Path) -> None:
    with pytest.warns(RenamedMetricWarning) as told:
        (entry,) = budgets_from_data(budget_table({"model_kb": {"max": 700.0}}), tmp_path / "budgets.toml")
    assert set(entry.limits) == {"model_kib"}
    assert entry.limits["model_kib"].max == 700.0  # the same number: the figure was always KiB
    message = str(told[0].message)
    assert "model_kb" in message and "model_kib" in message and "KiB" in message and "budgets.toml" in message


def test_a_budget_with_both_names_is_refused(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenamedMetricWarning)
        with pytest.raises(ConfigError, match="model_kb.*model_kib|model_kib.*model_kb"):
            budgets_from_data(budget_table({"model_kb": {"max": 700.0}, "model_kib": {"max": 650.0}}),
                              tmp_path / "budgets.toml")


def test_a_baseline_with_the_old_name_is_compared_with_the_new(tmp_path: Path) -> None:
    new = ResultRecord(pair="tinytracker-imx500", model="tinytracker", device="imx500", kind="imx500",
                       metric="model_kib", value=700.0, unit="KiB", backend="SIMULATED", status="info",
                       family="footprint", direction="lower")
    old = replace(new, metric="model_kb", unit="KB", value=600.0)
    report = compare_results([old], [new], FailOn.parse(DEFAULT_FAIL_ON))
    (comparison,) = report.comparisons
    assert comparison.metric == "model_kib"
    assert comparison.ratio == pytest.approx(700.0 / 600.0)
