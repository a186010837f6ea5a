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
from pytest_edgehil.measure.run_start import idle_level_w, record_noise_w, run_start_s


def run_end_s(time_s: np.ndarray, power_w: np.ndarray, *, noise_w: float | None = None) -> float | None:
    """Trace time (s) of the last step back to the idle level the record ends at (the last retrieval's end),
    to a fraction of a sample (half-level crossing); None when the record does not end at idle after at
    least 3 samples away from it. `noise_w`: the record's `run_start.record_noise_w`, when the caller has
    it (else computed here)."""
    p = np.asarray(power_w, dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    if p.size < 32:
        return None
    noise = record_noise_w(p) if noise_w is None else noise_w
    idle_w, threshold_w = idle_level_w(p, noise)
    away = np.flatnonzero(np.abs(p - idle_w) > threshold_w)
    if away.size < 3 or away[-1] >= p.size - 16:
        return None  # no activity, or the record ends before it has settled back at idle
    j = int(away[-1])
    if not (away[-3:] == np.arange(j - 2, j + 1)).all():
        return None  # a spike, not a stage: no RUN end to read
    before_w = float(np.median(p[j - 2:j + 1]))
    half_w = 0.5 * (before_w + idle_w)
    # The crossing lies after the last sample on the stage's side of the half level. The last sample away
    # from idle need not be on it: an integrating digitizer's last cell may hold a sliver of the stage, a mean
    # past the departure threshold but short of the half level; interpolated from there to the idle sample
    # after it (both below the half level), the crossing was extrapolated up to 15 samples early.
    k = j
    while k > 0 and (p[k] - half_w) * (before_w - idle_w) <= 0:
        k -= 1
    while k + 1 < p.size and (p[k + 1] - half_w) * (before_w - idle_w) > 0:
        k += 1  # a step barely past the threshold: samples within it may still be past the half level
    if k + 1 >= p.size or p[k + 1] == p[k]:
        return float(t[k])
    return float(t[k] + (half_w - p[k]) / (p[k + 1] - p[k]) * (t[k + 1] - t[k]))


def envelope_ratio(time_s: np.ndarray, power_w: np.ndarray, device_span_s: float, *,
                   noise_w: float | None = None) -> tuple[float, float] | None:
    """(trace span / device span of the RUN, its uncertainty) from the first step out of idle and the last
    step back to it; None when the record does not show both (no idle lead or tail, no step).

    `noise_w`: the record's `run_start.record_noise_w` when the caller has it; else it is computed once
    here for both ends (two medians over the whole record: 10-20 ms per million samples).
    """
    if device_span_s <= 0 or time_s.size < 2:
        return None
    noise = record_noise_w(power_w) if noise_w is None else noise_w
    try:
        start_s = run_start_s(time_s, power_w, noise_w=noise)
    except MeasurementError:
        return None
    end_s = run_end_s(time_s, power_w, noise_w=noise)
    if end_s is None:
        return None
    dt = float(time_s[1] - time_s[0])
    return (end_s - start_s) / device_span_s, 2 * dt / device_span_s


def check_clock_within(time_s: np.ndarray, power_w: np.ndarray, device_span_s: float, tolerance: float,
                       *, run: str = "the RUN", noise_w: float | None = None) -> None:
    """Raise WindowMisplaced when the RUN's envelope shows the device's clock further off the analyzer's
    than `tolerance` (the drift the unpinned windows were bounded by); nothing when it cannot tell.
    `noise_w`: as for `envelope_ratio`."""
    found = envelope_ratio(time_s, power_w, device_span_s, noise_w=noise_w)
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


def check_map_against_envelope(time_s: np.ndarray, power_w: np.ndarray, device_span_s: float, ratio: float,
                               ratio_u: float, *, run: str = "the RUN", noise_w: float | None = None) -> None:
    """Raise WindowMisplaced when the clock map's `ratio` (fitted to located edges) disagrees with the ratio
    the RUN's envelope shows: its first step out of idle and its last step back (`run_end_s`) over the
    device's own span. A map fitted to mismatched edges (a clock past the locator's 0.5 % search: a 0.8 %
    fast board pinned 0.9954 against the true 0.9921, and the last end-to-end window came out −2.6 %) is
    caught here. Nothing when the record does not show both ends. `noise_w`: as for `envelope_ratio`."""
    found = envelope_ratio(time_s, power_w, device_span_s, noise_w=noise_w)
    if found is None:
        return
    envelope, envelope_u = found
    # 0.1 % of slack: a slow supply path moves the two half-level crossings a little apart (10 µs RC on the
    # NGM202: 2.4e-4), while edges matched wrongly past the 0.5 % search are off by more (0.8 % clock: 3.3e-3).
    allowed = 3 * (envelope_u + ratio_u) + 1e-3
    if abs(envelope - ratio) > allowed:
        raise WindowMisplaced(
            f"{run} lasts {envelope * device_span_s * 1e3:.4f} ms in the trace, {device_span_s * 1e3:.4f} ms by the "
            f"device's clock (ratio {envelope:.6f}), but the stage edges located in it fit a ratio of {ratio:.6f}: "
            "they were matched to the wrong device edges, and the windows drift along the RUN. The device's "
            "clock is likely further off than the 0.5 % the locator searches (an internal RC oscillator): check "
            "the board's clock source, or make the stage edges visible so the clock is fitted")
