"""A RESULT's stage times are data: a value too large to be any board's stage time (a float64 packed where a
µs counter belongs, garbage bits) is refused as InvalidPayload naming the field, never a bare OverflowError
from the checks that follow (found by fast-acc: `_tick_us` raised OverflowError at about 1.8e305 µs)."""

from __future__ import annotations

import pytest

from pytest_edgehil.errors import InvalidPayload
from pytest_edgehil.link.messages import Result, StageTiming
from pytest_edgehil.link.replies import check_result


def _result(*timings: StageTiming) -> Result:
    return Result(tuple(timings), (), b"\0" * 32)


@pytest.mark.parametrize("huge", [1.8e305, 2.0 ** 53 * 4.0, 1e300])
@pytest.mark.parametrize("field", ["start_us", "readout_us", "inference_us", "retrieval_us"])
def test_a_stage_time_beyond_any_timer_is_refused_naming_the_field(field, huge):
    values = {"start_us": 0.0, "readout_us": 100.0, "inference_us": 230.0, "retrieval_us": 50.0}
    second = dict(values, start_us=400.0)
    second[field] = huge
    with pytest.raises(InvalidPayload) as info:
        check_result(_result(StageTiming(**values), StageTiming(**second)), 2, device="coral",
                     port="/dev/ttyACM0", command="RUN 2")
    text = str(info.value)
    assert field in text and "coral" in text and "/dev/ttyACM0" in text


def test_a_long_but_possible_stage_time_passes():
    day_us = 86_400e6  # a board that ran a day-long RUN: absurd for a budget, possible for a timer
    timings = (StageTiming(0.0, 100.0, day_us, 50.0), StageTiming(day_us + 200.0, 100.0, 230.0, 50.0))
    assert check_result(_result(*timings), 2, device="coral", port="p", command="RUN 2").timings == timings
