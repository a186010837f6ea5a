"""Energy windows from MLPerf Tiny's timestamp GPIO, sampled by a power monitor's digital input.

Firmware built for energy mode (`EE_CFG_ENERGY_MODE=1`) prints no `m-lap-us-` lines: `th_timestamp()`
pulls an open-drain GPIO low for a moment ("at least 1us" in the reference ports) right before and right
after the N back-to-back inferences of `infer N W%`. Wired into the energy monitor, the two falling edges
delimit the window on the monitor's own time base; the window's energy / N is the energy per inference
and its length / N the latency per inference (MLPerf Tiny's energy rule: the window's two edges matter
once per window, decoupling and front-end bandwidth cancel out).

A sampling monitor sees the line only at its sample instants: a pulse shorter than its sample interval is
missed most of the time (1 µs at 100 kS/s: seen with probability 0.1). Hence `hold_refusal` before a
capture (the lab declares the firmware's hold) and the exact-two-edges check after it. Each falling edge
is placed half a sample before the first sample that reads low (`digital_windows.digital_edges_s`);
the window's energy is `stage_edges.stage_window_energies_j` (step-aware partial edge samples).

Pure functions on arrays; seconds, watts, joules.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import CannotResolve, WindowMisplaced
from pytest_edgehil.measure.digital_windows import digital_edges_s
from pytest_edgehil.measure.energy import EnergySamples
from pytest_edgehil.measure.stage_edges import stage_window_energies_j

#: What a record's context says about where the windows came from.
WINDOW_SOURCE_TIMESTAMP = "timestamp GPIO (MLPerf Tiny energy mode)"
#: th_timestamp's hold in the reference ports ("Hold low for at least 1us"): assumed where the lab is silent.
REFERENCE_HOLD_S = 1e-6
#: A pulse must span this many sample intervals to be seen at every capture, whatever its phase.
MIN_HOLD_SAMPLES = 2
_REL_TOL = 1e-9  # floating-point slack of unit conversions (µs to s), far below any real hold difference

HOLD_FIX = ("make th_timestamp() hold the line low for at least two of the monitor's sample intervals (e.g. "
            "a 20 µs busy wait for a 100 kS/s PPK2) and declare it as `timestamp_hold_us` in the lab file, or "
            "use a monitor whose digital input samples faster or latches edges")


def hold_refusal(hold_s: float, sample_interval_s: float) -> CannotResolve | None:
    """Why a timestamp pulse held low for `hold_s` cannot be relied on at `sample_interval_s`, or None."""
    # A relative tolerance of 1e-9: a lab's `timestamp_hold_us = 20` becomes 20 * 1e-6 = 1.9999999999999998e-05 s,
    # which must count as the two 10 µs intervals it states, not as a hair shorter.
    if hold_s >= MIN_HOLD_SAMPLES * sample_interval_s * (1 - _REL_TOL):
        return None
    seen = min(1.0, hold_s / sample_interval_s)
    return CannotResolve("timestamp pulse", (0.0, hold_s), sample_interval_s,
                         f"th_timestamp() holds the timestamp line low for {hold_s * 1e6:.4g} µs, shorter than "
                         f"{MIN_HOLD_SAMPLES} sample intervals: each pulse is seen with probability "
                         f"{seen:.2g}, so a window edge would be missed or misplaced", HOLD_FIX)


def timestamp_window_s(time_s: ArrayLike, line: ArrayLike) -> tuple[float, float]:
    """(first, second) falling edge of the timestamp line in the trace, seconds.

    Raises CannotResolve when fewer than two falling edges are in the trace (a pulse shorter than a sample
    was missed, the input is not wired, or the firmware is performance-mode), WindowMisplaced when more
    than two are (another signal on the input, or a bouncing line).
    """
    t = np.asarray(time_s, dtype=np.float64)
    _, falls = digital_edges_s(t, line)
    dt = float(t[-1] - t[0]) / (t.size - 1)
    if falls.size < 2:
        raise CannotResolve("timestamp window", (float(t[0]), float(t[-1])), dt,
                            f"the monitor's digital input shows {falls.size} falling edge(s) of the timestamp "
                            "line, an energy-mode `infer` makes two: a pulse shorter than the sample interval "
                            "was missed, or the input is not wired to the board's timestamp GPIO",
                            HOLD_FIX + "; check the wiring (open-drain line, pull-up to the monitor's logic level)")
    if falls.size > 2:
        raise WindowMisplaced(f"the monitor's digital input shows {falls.size} falling edges in one `infer` "
                              f"capture (at {', '.join(f'{x * 1e3:.4f}' for x in falls[:6])} ms), two are "
                              "expected: another signal is on that input or the line bounces; check the wiring "
                              "and the pull-up")
    return float(falls[0]), float(falls[1])


def energy_from_timestamps(time_s: ArrayLike, power_w: ArrayLike, line: ArrayLike, count: int) -> EnergySamples:
    """Energy per inference of one `infer count W%` window delimited by the timestamp line.

    One value per window: `inference_j` = `end_to_end_j` = window energy / count (the reference's timed
    loop is `th_infer` only: no readout or retrieval), `trace_inference_s` = window length / count (the
    first pulse's hold is inside the window: hold / count of bias, reported in the note). `*_u_j` adds each
    edge's placement (± half a sample, uniform) at the power beside it. Raises what `timestamp_window_s`
    and `stage_window_energies_j` raise; ValueError for count < 1.
    """
    if count < 1:
        raise ValueError(f"an infer window holds >= 1 inference, got {count}")
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    first, second = timestamp_window_s(t, line)
    dt = float(t[-1] - t[0]) / (t.size - 1)
    energy_j = float(stage_window_energies_j(t, p, [[first, second]])[0])
    edge_w = [float(p[min(round((x - t[0]) / dt), p.size - 1)]) for x in (first, second)]
    u_j = dt / math.sqrt(12) * math.hypot(*edge_w)
    length_s = second - first
    per = np.array([energy_j / count])
    return EnergySamples(
        inference_j=per, end_to_end_j=per.copy(), inference_power_w=np.array([energy_j / length_s]),
        end_to_end_power_w=np.array([energy_j / length_s]), trace_inference_s=np.array([length_s / count]),
        sample_interval_s=dt,
        trace_latency_note=(f"one window of {count} back-to-back inferences between the timestamp GPIO's falling "
                            f"edges ({length_s * 1e3:.4f} ms), divided by {count}"),
        inference_u_j=np.array([u_j / count]), end_to_end_u_j=np.array([u_j / count]), offset_s=first)
