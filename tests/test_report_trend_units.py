"""The report's trend rows across nights recorded in different units of one dimension.

The gate compares a baseline in J with a run in mJ in the run's unit (results/gate_units.py); the report's
trend plot did not: a night in J (0.0342) was drawn on the row titled with the newest night's unit (mJ)
beside 34.2, a thousandfold drop on the plot that never happened. Expected (by hand): 0.0342 J = 34.2 mJ on
the row, and its budget and CI in mJ too; a unit of another dimension is left as recorded.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pytest_edgehil.results.report import read_results
from pytest_edgehil.results.report_trends import trend_tables

from .report_support import make_night, make_record, save

PAIR = "qsegment-imx500"


def night_with(night: int, unit: str, value: float, limit: float):
    results = make_night(night, pairs=(PAIR,))
    results.records = [r for r in results.records if r.metric != "inference_mj"]
    results.records.append(replace(make_record(PAIR, "inference_mj", value), unit=unit, limit_max=limit,
                                   ci_low=value * 0.99, ci_high=value * 1.01))
    return results


def test_a_night_in_joules_is_drawn_in_the_newest_night_s_millijoules(tmp_path: Path) -> None:
    old = save(tmp_path / "old.json", night_with(0, "J", 0.0342, 0.05))
    new = save(tmp_path / "new.json", night_with(1, "mJ", 34.5, 50.0))
    tables = trend_tables([read_results(old), read_results(new)])
    first = tables[0][(PAIR, "inference_mj")]
    assert (first.unit, first.value, first.limit_max) == ("mJ", pytest.approx(34.2), pytest.approx(50.0))
    assert (first.ci_low, first.ci_high) == (pytest.approx(34.2 * 0.99), pytest.approx(34.2 * 1.01))
    assert tables[1][(PAIR, "inference_mj")].value == 34.5


def test_a_night_in_a_unit_of_another_dimension_is_left_as_recorded(tmp_path: Path) -> None:
    old = save(tmp_path / "old.json", night_with(0, "ms", 0.0342, 0.05))
    new = save(tmp_path / "new.json", night_with(1, "mJ", 34.5, 50.0))
    first = trend_tables([read_results(old), read_results(new)])[0][(PAIR, "inference_mj")]
    assert (first.unit, first.value) == ("ms", 0.0342)
