"""The device's clock checked against the analyzer's from the RUN's envelope, when no stage edge pins it.

The windows of a RUN are placed by a clock map fitted to the stage edges the trace shows. Where too few
show to pin its ratio, the device's own timer places them, and the meter bounds the drift by an RC
oscillator's 0.5 % (`trace_windows._PASS1_TOLERANCE`). A board further off than that would drift its
windows past the bound without a word (a 1 % slow timer: end to end 1.2 % off, inference +270 %). The RUN's
envelope still shows its clock: the first step out of idle is the first readout's start, the last step back
to idle the last retrieval's end, and their distance in the trace over the device's own account of it is
the clock ratio, to a sample or two over the whole RUN.

Pure functions on arrays; seconds.
"""

from __future__ import annotations

import numpy as np

from pytest_edgehil.errors import MeasurementError, WindowMisplaced
from pytest_edgehil.measure.run_start import run_start_s


def envelope_ratio(time_s: np.ndarray, power_w: np.ndarray, device_span_s: float) -> tuple[float, float] | None:
    """(trace span / device span of the RUN, its uncertainty) from the first step out of idle and the last
    step back to it; None when the record does not show both (no idle lead or tail, no step)."""
    if device_span_s <= 0 or time_s.size < 2:
        return None
    try:
        start_s = run_start_s(time_s, power_w)
        end_s = -run_start_s(-time_s[::-1], power_w[::-1])
    except MeasurementError:
        return None
    dt = float(time_s[1] - time_s[0])
    return (end_s - start_s) / device_span_s, 2 * dt / device_span_s


def check_clock_within(time_s: np.ndarray, power_w: np.ndarray, device_span_s: float, tolerance: float,
                       *, run: str = "the RUN") -> None:
    """Raise WindowMisplaced when the RUN's envelope shows the device's clock further off the analyzer's
    than `tolerance` (the drift the unpinned windows were bounded by); nothing when it cannot tell."""
    found = envelope_ratio(time_s, power_w, device_span_s)
    if found is None:
        return
    ratio, ratio_u = found
    if abs(ratio - 1.0) > tolerance + 3 * ratio_u:
        raise WindowMisplaced(
            f"{run} lasts {ratio * device_span_s * 1e3:.4f} ms in the trace but {device_span_s * 1e3:.4f} ms by the "
            f"device's clock: its timer runs {(1 / ratio - 1) * 100:+.2f} % against the analyzer, beyond the "
            f"{tolerance:.1%} the meter allows where the trace shows too few stage edges to fit the clock. Check "
            "the board's clock source (an internal RC oscillator; a crystal is within 0.01 %), or make the stage "
            "edges visible (a finer sample interval, the trigger line wired) so the clock is fitted; if the clock is "
            "right, the record does not hold the whole RUN (its start or end lies outside it)")
