"""Gate inputs at the edges a lab's own files reach: values at zero, a candidate that is also one of its
baseline's sessions, one pair × metric recorded by several tests. Each expected verdict is worked out
here from the values, not read back from the gate."""

from __future__ import annotations

import json

import pytest

from pytest_edgehil.cli import EXIT_OK, EXIT_REGRESSION, main
from pytest_edgehil.results.gate import FailOn, GateStatus, compare_records
from pytest_edgehil.results.store import ResultRecord

from .test_gate_semantics import save

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
