"""Gate inputs at the edges a lab's own files reach: values at zero, a candidate that is also one of its
baseline's sessions, one pair × metric recorded by several tests. Each expected verdict is worked out
here from the values, not read back from the gate."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_ERROR, EXIT_OK, EXIT_REGRESSION, main
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.gate import FailOn, GateStatus, compare_records
from pytest_edgehil.results.gate_inputs import check_inputs, load_baseline
from pytest_edgehil.results.history import History
from pytest_edgehil.results.report import write_report
from pytest_edgehil.results.store import ResultRecord, load_results

from .conftest import MODELS
from .test_gate_semantics import exact, record, save

ACCURACY_1 = FailOn.parse("accuracy:1%")


def _refuse(token: str) -> float:
    raise AssertionError(f"not strict JSON: {token}")


def task(metric: str, value: float, direction: str, *, test: str = "test_task.py::test_it") -> ResultRecord:
    """A deterministic task metric (no samples: a score or a count over a fixed evaluation set)."""
    return ResultRecord(pair="qsegment-coral", model="qsegment", device="coral", kind="coral", metric=metric,
                        value=value, unit="", backend="SIMULATED", status="pass", direction=direction,
                        family="accuracy", test=test, outcome="passed")


# ----------------------------------------------------------------------------------------- zero values


@pytest.mark.parametrize(("metric", "direction", "base", "new", "status"), [
    ("top1", "higher", 0.72, 0.0, GateStatus.REGRESSED),  # a model that gets nothing right: 100 % worse
    ("top1", "higher", 0.0, 0.72, GateStatus.IMPROVED),
    ("false_alarms", "lower", 0.0, 3.0, GateStatus.REGRESSED),  # none before: any is past every threshold
    ("false_alarms", "lower", 3.0, 0.0, GateStatus.IMPROVED),
    ("false_alarms", "lower", 0.0, 0.0, GateStatus.SAME),
])
def test_a_deterministic_value_at_zero_is_judged_not_left_unknown(metric: str, direction: str, base: float,
                                                                  new: float, status: GateStatus) -> None:
    """Relative change from or to zero is 100 % or unbounded, past any threshold: a verdict, not "no ratio"."""
    c = compare_records(task(metric, base, direction), task(metric, new, direction), ACCURACY_1)
    assert c.status is status
    assert c.blocking == (status is GateStatus.REGRESSED)


def test_an_accuracy_loss_rising_from_zero_is_shown_not_blocking(tmp_path: Path) -> None:
    """int8 TinyTracker loses no accuracy (quantization_loss_cm 0); a model that loses 0.01 cm is 100 %
    within its 0.16 cm budget, but unboundedly worse relative to 0: the gate shows it and does not block (the
    gaze errors it is the difference of are gated themselves)."""
    c = compare_records(task("quantization_loss_cm", 0.0, "lower"), task("quantization_loss_cm", 0.01, "lower"),
                        ACCURACY_1)
    assert c.status is GateStatus.REGRESSED and not c.gated and not c.blocking
    base = save(tmp_path / "base.json", [task("quantization_loss_cm", 0.0, "lower")])
    new = save(tmp_path / "new.json", [task("quantization_loss_cm", 0.01, "lower")])
    assert main(["compare", str(base), str(new), "--history", "off"]) == EXIT_OK
    # The gaze error itself still gates.
    gaze = compare_records(task("gaze_error_cm", 1.154, "lower"), task("gaze_error_cm", 1.30, "lower"), ACCURACY_1)
    assert gaze.blocking


def test_edgehil_compare_fails_a_score_that_fell_to_zero(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = save(tmp_path / "base.json", [task("top1", 0.72, "higher")])
    new = save(tmp_path / "new.json", [task("top1", 0.0, "higher")])
    assert main(["compare", str(base), str(new), "--history", "off"]) == EXIT_REGRESSION
    assert "FAIL qsegment-coral top1: 0.72 → 0" in capsys.readouterr().out
    rose = save(tmp_path / "rose.json", [task("top1", 0.72, "higher")])
    assert main(["compare", str(new), str(rose), "--history", "off", "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out, parse_constant=_refuse)  # from zero: no Infinity token
    assert [c["status"] for c in data["comparisons"]] == ["IMPROVED"]
    same = save(tmp_path / "same.json", [task("top1", 0.72, "higher")])
    assert main(["compare", str(base), str(same), "--history", "off"]) == EXIT_OK


# ------------------------------------------------------------------ the run under test is not its baseline


def _nights(directory: Path, levels: list[float]) -> None:
    for i, level in enumerate(levels):
        save(directory / f"night-{i}.json", [record(exact(level))], started_at=f"2026-11-0{i + 1}T00:00:00+00:00")


STEADY = [0.0114 * (1 + d) for d in (0.0, 0.003, -0.002, 0.001, -0.003)]  # a steady bench: 5 sessions within ±0.3 %


def test_a_candidate_saved_into_its_baseline_directory_is_left_out_of_the_baseline(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`pytest --edgehil-save nightly/today.json` then `edgehil compare nightly/ nightly/today.json`: +15 %
    against 5 steady nights is a regression; counted as a sixth night of its own baseline, it was compared
    with itself and passed (UNKNOWN: "within what that drift can explain")."""
    _nights(tmp_path, STEADY)
    today = save(tmp_path / "today.json", [record(exact(0.0114 * 1.15))], started_at="2026-11-07T00:00:00+00:00")
    assert main(["compare", str(tmp_path), str(today), "--history", "off", "--json"]) == EXIT_REGRESSION
    data = json.loads(capsys.readouterr().out)
    (c,) = data["comparisons"]
    assert (c["status"], c["n_base"]) == ("REGRESSED", len(STEADY))
    assert any("left out of the baseline" in flag and "today.json" in flag for flag in data["run_flags"])
    # A copy of the candidate under another name is the same run (its run id): left out too.
    shutil.copy(today, tmp_path / "today-copy.json")
    assert main(["compare", str(tmp_path), str(today), "--history", "off", "--json"]) == EXIT_REGRESSION
    assert json.loads(capsys.readouterr().out)["comparisons"][0]["n_base"] == len(STEADY)


def test_a_baseline_directory_holding_only_the_candidate_is_refused(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    today = save(tmp_path / "today.json", [record(exact(0.0114))])
    with pytest.raises(ConfigError, match=r"holds no session but the run under test \(.*today\.json"):
        load_baseline(tmp_path, leave_out=load_results(today))
    assert main(["compare", str(tmp_path), str(today), "--history", "off"]) == EXIT_ERROR
    assert "holds no session but the run under test" in capsys.readouterr().err


def test_a_session_copied_twice_into_a_baseline_directory_counts_once(tmp_path: Path) -> None:
    """Copies of one night would count it several times, a spread of zero between them, and the drift
    estimate would understate the bench's drift; a run is one session whatever its files are named."""
    _nights(tmp_path, STEADY)
    for copy in range(3):
        shutil.copy(tmp_path / "night-0.json", tmp_path / f"night-0-copy{copy}.json")
    sessions = load_baseline(tmp_path)
    assert len(sessions) == len(STEADY)
    assert len({s.run.run_id for s in sessions}) == len(STEADY)


def test_the_report_of_a_results_directory_glob_does_not_compare_the_newest_run_with_its_copy(tmp_path: Path) -> None:
    """`edgehil report edgehil-results/*.json` takes latest.json too, a copy of the newest run: the page's
    gate compared that run with itself and said "passed (all SAME)" over a +15 % regression."""
    _nights(tmp_path, STEADY[:1])
    newest = save(tmp_path / "night-9.json", [record(exact(0.0114 * 1.15))], started_at="2026-11-09T00:00:00+00:00")
    shutil.copy(newest, tmp_path / "latest.json")
    html = tmp_path / "report.html"
    runs = write_report(sorted(tmp_path.glob("*.json")), html)
    page = html.read_text(encoding="utf-8")
    assert "edgehil gate FAILED: 1 blocking (1 REGRESSED" in page
    assert len(runs) == 2  # the trends count the run once too
    # Through a history store (the copy is the same run there: one key).
    with History(tmp_path / "history.sqlite") as history:
        runs = write_report(sorted(tmp_path.glob("*.json")), html, history=history)
    assert "edgehil gate FAILED: 1 blocking (1 REGRESSED" in html.read_text(encoding="utf-8")
    assert len(runs) == 2


# ------------------------------------------------------------ one pair × metric recorded by several tests


def test_a_metric_recorded_by_two_tests_with_different_values_is_a_named_input_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A test parametrized over two evaluation splits records top1 for one pair twice. The val split stays
    at 0.80, the test split falls 0.75 → 0.71 (5.3 % worse, past accuracy:1 %): comparing the first record
    only, the gate passed (SAME) with a note. One value per pair × metric cannot say which to compare."""
    def split(name: str, value: float) -> ResultRecord:
        return task("top1", value, "higher", test=f"test_dup.py::test_top1[qsegment-coral-{name}]")
    base = save(tmp_path / "base.json", [split("val", 0.80), split("test", 0.75)])
    new = save(tmp_path / "new.json", [split("val", 0.80), split("test", 0.71)])
    assert main(["compare", str(base), str(new), "--history", "off"]) == EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "FAIL INPUT DUPLICATES" in out and "qsegment-coral top1" in out and "qsegment-coral-test]" in out
    # Refused as an input problem, and the split that fell is a verdict of its own (its test's baseline).
    assert "edgehil gate FAILED: 1 blocking, input duplicates" in out
    # Allowed, each split is compared with its own baseline (not the first record: the order tests finished
    # in): the test split's fall blocks, named by its test; equal values are no problem at all.
    assert main(["compare", str(base), str(new), "--history", "off", "--allow", "duplicates"]) == EXIT_REGRESSION
    allowed = capsys.readouterr().out
    assert "FAIL qsegment-coral top1 (from test_dup.py::test_top1[qsegment-coral-test])" in allowed
    twice = save(tmp_path / "twice.json", [split("val", 0.80), split("test", 0.80)])
    assert not check_inputs(load_baseline(twice), load_results(twice))


def test_pytest_repeat_repeats_are_named_as_such(tmp_path: Path) -> None:
    """pytest-repeat's `--count 3` runs one test three times, ids ending "[...-1-3]": the refusal says so,
    since "record each under a name of its own" is no help there; other duplicates get no such hint."""
    def repeat(index: int, value: float) -> ResultRecord:
        return task("top1", value, "higher", test=f"test_dup.py::test_top1[qsegment-coral-{index}-3]")
    repeated = save(tmp_path / "repeated.json", [repeat(1, 0.80), repeat(2, 0.79), repeat(3, 0.81)])
    problems = check_inputs(load_baseline(repeated), load_results(repeated))  # one per side
    assert problems and all(p.kind == "duplicates" and "pytest-repeat" in p.text for p in problems)
    other = save(tmp_path / "other.json", [task("top1", 0.80, "higher", test="test_a.py::test_top1"),
                                           task("top1", 0.79, "higher", test="test_b.py::test_top1[1-3]")])
    problems = check_inputs(load_baseline(other), load_results(other))
    assert problems and all(p.kind == "duplicates" and "pytest-repeat" not in p.text for p in problems)


def test_the_pytest_gate_names_a_metric_its_own_run_recorded_twice(pytester: pytest.Pytester,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini(f"""
        [pytest]
        edgehil_models_dir = {MODELS}
    """)
    pytester.makepyfile(test_dup="""
        import os
        import pytest

        @pytest.mark.edgehil_metrics("top1")
        @pytest.mark.parametrize("split", ["val", "test"])
        def test_top1(edgehil_record, split):
            edgehil_record.check("top1", float(os.environ["TOP1_" + split.upper()]))
    """)
    pytester.makefile(".toml", budgets='[[budget]]\nmodel = "qsegment"\ndevice = "coral"\n'
                                       '[budget.limits]\ntop1 = { min = 0.70 }\n')
    args = ("--device=coral", "-p", "no:cacheprovider", "--budgets=budgets.toml", "--edgehil-history=off")
    monkeypatch.setenv("TOP1_VAL", "0.80")
    monkeypatch.setenv("TOP1_TEST", "0.75")
    pytester.runpytest(*args, "--edgehil-save=base.json").assert_outcomes(passed=2)
    monkeypatch.setenv("TOP1_TEST", "0.71")
    result = pytester.runpytest(*args, "--edgehil-save=new.json", "--edgehil-baseline=base.json")
    result.stdout.fnmatch_lines(["*FAIL INPUT DUPLICATES*qsegment-coral top1*", "*edgehil gate FAILED*duplicates*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# ----------------------------------------------------------------------------------- at the threshold


@pytest.mark.parametrize(("direction", "base", "new", "spec", "status"), [
    # A threshold is the largest change that passes (docs/gate.md); these are exactly at it, though the
    # relative change computes a few ulps past it in floating point.
    ("higher", 0.72, 0.7128, "accuracy:1%", GateStatus.SAME),  # 1 - 0.7128/0.72 = 0.010000000000000009
    ("lower", 10.0, 10.5, "accuracy:5%", GateStatus.SAME),  # 10.5/10 - 1 = 0.050000000000000044
    ("higher", 0.72, 0.7272, "accuracy:1%", GateStatus.SAME),  # 1 % better: not past it either
    # Just past it, in either direction.
    ("higher", 0.72, 0.7127, "accuracy:1%", GateStatus.REGRESSED),
    ("lower", 10.0, 10.5001, "accuracy:5%", GateStatus.REGRESSED),
    ("higher", 0.72, 0.7273, "accuracy:1%", GateStatus.IMPROVED),
])
def test_a_change_of_exactly_the_threshold_passes_and_one_just_past_it_does_not(
        direction: str, base: float, new: float, spec: str, status: GateStatus) -> None:
    c = compare_records(task("score", base, direction), task("score", new, direction), FailOn.parse(spec))
    assert c.status is status


# ------------------------------------------------------------------------------------------- units


def test_a_baseline_in_units_of_another_kind_is_shown_in_its_own_unit_and_not_compared(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    # A figure in ms under an energy metric: printed as "12.16 mJ → 12.16 mJ" it read as no change.
    # (Units of one kind, J against mJ, are converted: tests/test_gate_units.py.)
    base = save(tmp_path / "base.json", [dataclasses.replace(record(exact(12.16)), unit="ms")])
    new = save(tmp_path / "new.json", [record(exact(12.16))])
    assert main(["compare", str(base), str(new), "--history", "off"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "12.16 ms → 12.16 mJ" in out and "in 'ms', this run in 'mJ' (time against energy)" in out
    assert "12.16 → 12.16 mJ" not in out
    assert main(["compare", str(base), str(new), "--history", "off", "--json"]) == EXIT_OK
    (row,) = json.loads(capsys.readouterr().out)["comparisons"]
    assert (row["base_unit"], row["unit"], row["status"]) == ("ms", "mJ", "UNKNOWN")


def test_a_comparison_across_two_boards_of_one_kind_says_so() -> None:
    base, new = (dataclasses.replace(record(exact(1.0)), context={"model_sha256": "a" * 64, "device_serial": serial})
                 for serial in ("CORAL-0001", "CORAL-0002"))
    flags = compare_records(base, new, FailOn.parse("energy:5%")).flags
    assert "board serial number differs: CORAL-0001 → CORAL-0002" in flags
    assert not compare_records(base, base, FailOn.parse("energy:5%")).flags


def test_a_comparison_across_two_current_ranges_says_so() -> None:
    """An N6781A reads ±(0.025 % + 10 µA) on its 100 mA range and ±(0.03 % + 250 µA) on its 3 A range: the same
    board measured on each differs by up to their offsets (1.2 % of a 21 mA inference), which a comparison
    would pass off as a change of the model."""
    base, new = (dataclasses.replace(record(exact(1.0)), context={"model_sha256": "a" * 64, "current_range_a": r})
                 for r in (0.1, 3.0))
    assert "current range differs: 0.1 → 3.0" in compare_records(base, new, FailOn.parse("energy:5%")).flags
    assert not compare_records(base, base, FailOn.parse("energy:5%")).flags


def test_two_baseline_sessions_say_what_they_can_call_not_a_runaway_percentage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two sessions give the drift estimate one degree of freedom: Student's t at α = 0.01 with 1 df is about
    32, so the smallest change they can call is a factor, not a percentage; the note said "within what that
    drift can explain (475.6 %)" and, with a wider spread, a 10^9 % figure. It must say it as a factor and
    name the remedy (more baseline sessions)."""
    _nights(tmp_path, [0.0114, 0.0114 * 1.06])
    today = save(tmp_path / "today.json", [record(exact(0.0114 * 1.10))], started_at="2026-11-07T00:00:00+00:00")
    assert main(["compare", str(tmp_path), str(today), "--history", "off", "--json"]) == EXIT_OK
    (c,) = json.loads(capsys.readouterr().out)["comparisons"]
    assert c["status"] == "UNKNOWN"
    note = c["note"]
    figures = [float(x.replace(",", "")) for x in re.findall(r"([\d,]+(?:\.\d+)?) ?%", note)]
    assert all(f < 100 for f in figures), note  # no runaway percentages
    assert re.search(r"factor|×", note) and "baseline sessions" in note, note
