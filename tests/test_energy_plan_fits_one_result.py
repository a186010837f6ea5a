"""The hardware energy plan's RUN must come back in one RESULT frame.

MLPerf Tiny's rule (windows of at least 10 s, EnergyPlan.hardware) sized a window by adding inferences: a
model with a 50 µs frame (a small net on a Linux board's agent) got RUN 200,000, whose RESULT (four
float64 stage times per inference, docs/protocol.md: 6.4 MB) no 4 MiB frame carries; every energy test
would fail with the board's "Result reply cannot be sent". Sizes below by hand from the protocol.
"""

from __future__ import annotations

from pytest_edgehil.link.messages import StageTiming
from pytest_edgehil.measure.meter import EnergyPlan, plan_acquisition

FRAME = 4 * 1024 * 1024
TIMING = 4 * 8  # start, readout, inference, retrieval: float64 µs each


class _Digitizer:
    """The planning facts of a digitizer like the N678xA (5.12 µs, pre-trigger samples)."""

    model = "digitizer stand-in"
    keeps_pretrigger = True
    start_latency_s = 0.0
    max_points = 512 * 1024

    def supported_sample_interval_s(self, requested_s: float) -> float:
        return max(requested_s, 5.12e-6)


def test_a_fast_model_s_ten_second_window_fits_one_result_frame() -> None:
    timing = StageTiming(start_us=0.0, readout_us=10.0, inference_us=30.0, retrieval_us=10.0)  # 50 µs a frame
    plan = EnergyPlan.hardware()
    assert plan.min_window_s / 50e-6 * TIMING > FRAME  # the rule alone asks for more than one frame holds
    runs, _, _, _ = plan_acquisition(timing, _Digitizer(), plan)  # type: ignore[arg-type]
    assert runs * TIMING <= FRAME // 2, runs  # stage times in half a frame, the rest for the outputs
    assert runs * 50e-6 >= 1.0  # still a long window: tens of thousands of inferences, edges once per window


def test_a_slow_model_keeps_the_ten_second_rule() -> None:
    timing = StageTiming(start_us=0.0, readout_us=17_900.0, inference_us=860.0, retrieval_us=240.0)  # 19 ms
    runs, _, _, _ = plan_acquisition(timing, _Digitizer(), EnergyPlan.hardware())  # type: ignore[arg-type]
    assert runs == -(-10.0 // 19e-3)  # ceil(10 s / 19 ms) = 527


def test_the_on_board_counter_window_of_a_fast_model_fits_one_result_frame() -> None:
    """The agent's energy counters (RAPL) size n the same way: 10 s at 50 µs a frame, capped likewise; a
    1 ms counter needs only 2 × 1 ms / 1 % × 1.25 = 0.25 s of it (5,000 inferences), far under the cap."""
    from pytest_edgehil.link.energy_messages import CounterWindow
    from pytest_edgehil.measure.onboard_energy import runs_for

    window = CounterWindow("intel-rapl:0", "RAPL package-0", 0, 61.0, 1000.0, 0, 0, 0, 0)
    n = runs_for(window, 50e-6, EnergyPlan.hardware())
    assert n * TIMING <= FRAME // 2 and n * 50e-6 >= 1.0, n


def test_a_counter_too_slow_for_one_result_s_inferences_is_refused_before_any_run() -> None:
    """A counter updating every 100 ms needs 2 × 100 ms / 1 % × 1.25 = 25 s of a 50 µs frame: 500,000
    inferences, a RESULT of 16 MB no frame carries. Refused naming the counter, not sent as RUN 500,000 (the
    board's RESULT would fail as a firmware fault)."""
    import pytest

    from pytest_edgehil.errors import CannotResolve
    from pytest_edgehil.link.energy_messages import CounterWindow
    from pytest_edgehil.measure.onboard_energy import runs_for

    window = CounterWindow("hwmon0", "INA power sensor", 0, 61.0, 100_000.0, 0, 0, 0, 0)
    assert 1.25 * 2 * 0.1 / 0.01 / 50e-6 * TIMING > FRAME // 2
    with pytest.raises(CannotResolve, match="hwmon0") as caught:
        runs_for(window, 50e-6, EnergyPlan.hardware())
    assert "65,536" in str(caught.value) and "100 ms" in str(caught.value), caught.value
