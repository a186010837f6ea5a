"""What a run window's records say placed it (`EnergyMeasurement.window_source`): no clock is fitted to a run
window (its end pins none closer than a reading over the RUN, `measure.run_window`), yet its records said
"trigger start + clock fit", the label of the per-inference windows the edge locator places by a fitted map.
The label must say what is done: the start placed from the trigger by the device's clock within the 0.5 % the
meter allows, the end at the RUN's last step back to idle."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.measure.digital_windows import WINDOW_SOURCE_TRIGGER
from pytest_edgehil.measure.meter import EnergyPlan
from pytest_edgehil.measure.run_window import RUN_WINDOW_SOURCE_RUN_START, RUN_WINDOW_SOURCE_TRIGGER
from pytest_edgehil.results.store import load_results

from .test_bench_physics import measure

REPO = Path(__file__).resolve().parent.parent


def test_a_run_window_is_labelled_by_what_placed_it_not_by_a_clock_fit() -> None:
    m, _, _, _, _, _ = measure({"ideal": True}, device="coral", dialect="keithley-2281s",
                               plan=EnergyPlan(windows=1, runs_per_window=5))
    assert m.refusal is not None and m.end_to_end_j.size == 1  # a run window was measured
    assert m.window_source == RUN_WINDOW_SOURCE_TRIGGER
    label = m.window_source
    assert "clock fit" not in label
    assert "from the trigger by the device clock" in label and "within 0.5 %" in label
    assert "end at the RUN's last step to idle" in label


def test_the_trigger_less_run_window_says_it_starts_from_the_runs_first_step() -> None:
    label = RUN_WINDOW_SOURCE_RUN_START
    assert "clock fit" not in label and "trigger" not in label
    assert "from the RUN's first power step by the device clock (within 0.5 %)" in label
    assert label.endswith("end at the RUN's last step to idle")


def test_per_inference_windows_keep_the_clock_fit_label() -> None:
    m, _, _, _, _, _ = measure({"ideal": True}, plan=EnergyPlan(windows=1, runs_per_window=5))
    assert m.refusal is None and m.inference_j.size == 5  # the edge locator's fitted map placed them
    assert m.window_source == WINDOW_SOURCE_TRIGGER == "trigger start + clock fit"


def test_the_energy_records_of_a_run_window_carry_its_label(edgehil_project: pytest.Pytester, tmp_path: Path) -> None:
    lab = edgehil_project.makefile(".toml", lab='[devices.coral]\nkind = "coral"\nsimulated = true\n'
                                   'twin_analyzer = "keithley-2281s"\n')
    edgehil_project.makepyfile(test_energy_suite=(REPO / "suites" / "test_energy.py").read_text(encoding="utf-8"))
    saved = tmp_path / "results.json"
    result = edgehil_project.runpytest("--device=coral", "--model=qsegment", f"--lab={lab}", f"--edgehil-save={saved}",
                                       "-k", "end_to_end", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    records = [r for r in load_results(saved).records if "end_to_end" in r.metric]
    assert records and all(r.context.get("window_source") == RUN_WINDOW_SOURCE_TRIGGER for r in records), [
        r.context.get("window_source") for r in records]
