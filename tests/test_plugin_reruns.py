"""A test retried by pytest-rerunfailures (`--reruns N`) records what its last attempt measured, once.

The plugin reports a failed attempt as a call report with outcome "rerun" and runs the same item again;
the item's `user_properties` keep every earlier attempt's entries, so the last attempt's report carries
them too. Taken as they came, one passing test left three records of one pair × metric in the results
file (the failed attempt's value twice), and the gate refused the run and every later one that used it as
a baseline as DUPLICATES ("record each under a name of its own"), comparing the failed attempt's value.
The reports below are shaped as pytest-rerunfailures 16 sends them (seen with --edgehil-save).
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from pytest_edgehil.plugin.run import EdgeHILRun
from pytest_edgehil.results.records import USER_PROPERTY, MetricRecord

NODEID = "test_lat.py::test_inference[qsegment-imx500]"


def _property(value_ms: float) -> tuple[str, object]:
    record = MetricRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500",
                          metric="inference_ms", value=value_ms, unit="ms", backend="SIMULATED", status="pass")
    return (USER_PROPERTY, asdict(record))


def _call_report(outcome: str, user_properties: list[tuple[str, object]]) -> pytest.TestReport:
    report = pytest.TestReport(NODEID, ("test_lat.py", 4, "test_inference"), {}, "failed", None, "call",
                               user_properties=user_properties)
    report.outcome = outcome  # type: ignore[assignment]  # "rerun" too, as pytest-rerunfailures sets it
    return report


def _run() -> EdgeHILRun:
    def no_session():  # collecting records needs no session
        raise AssertionError("collect() built a session")
    return EdgeHILRun(build_session=no_session, in_use=True)


def test_a_test_passing_on_its_second_attempt_records_that_attempts_value_once():
    run = _run()
    first, second = _property(0.2294), _property(0.2304)
    assert run.collect(_call_report("rerun", [first])) is None
    taken = run.collect(_call_report("passed", [first, second]))
    assert taken is not None and taken.outcome == "passed"
    assert [r.value for r in run.records] == [0.2304]


def test_every_attempt_before_the_last_is_left_out():
    run = _run()
    values = [0.25, 0.24, 0.23]
    properties = [_property(v) for v in values]
    run.collect(_call_report("rerun", properties[:1]))
    run.collect(_call_report("rerun", properties[:2]))
    run.collect(_call_report("failed", properties))  # out of reruns: the last attempt's failure is recorded
    assert [(r.value, t.outcome) for t in run.tests for r in t.records] == [(0.23, "failed")]


def test_a_test_run_once_keeps_every_record_it_made():
    run = _run()
    run.collect(_call_report("passed", [_property(0.23), _property(0.24)]))
    assert [r.value for r in run.records] == [0.23, 0.24]
