"""Windows from the trigger line recorded in the sample stream: a power monitor's digital channel.

A monitor that samples the device's trigger line beside the current (PPK2 logic port, Joulescope GPI, Otii
GPI) gives every inference's start and end on the monitor's own time base. That removes the clock problem
at its root (MLPerf Tiny routes its timestamp GPIO into the energy monitor for this reason): the device's
timer may run 0.2 % fast, the trace still says where each inference is.

How: the digital channel's rising edges are the inference starts, its falling edges the inference ends
(the device twin and MLPerf-style firmware hold the line high while inferring). Each edge instant is
known to within one sample (the line is read at the sample instants), so one edge alone is not precise
enough for a 0.23 ms window at 10 µs; a straight line fitted through all of them — trace_t = offset +
ratio · device_t — is (n edges: ± dt/√(12·n)). Every device edge (readout start, inference start and end,
retrieval end) is then moved onto the trace through that line, and the trace's own energy-centroid
locator (`trace_windows.locate_edges`, via `energy.energy_from_trace`) refines each edge from the power
steps as it does for a SCPI analyzer. The device's clock error never reaches the window placement.

Pure functions on arrays; times in seconds on the trace axis, powers in watts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import MeasurementError, WindowMisplaced
from pytest_edgehil.measure.energy import EnergySamples, energy_from_trace, run_energy_from_trace

#: What a record's context says about where its windows came from.
WINDOW_SOURCE_DIGITAL = "digital channel"  # trigger edges sampled in the monitor's stream
WINDOW_SOURCE_TRIGGER = "trigger start + clock fit"  # the analyzer's trigger instant, device timings, fitted map
WINDOW_SOURCE_RUN_START = "run start + clock fit"  # a trigger-less stream (FastLog): the RUN's first power step

# An edge farther than this many sample intervals from the fitted line is not the line's edge: the digital
# channel is not this device's trigger line (or a pulse was lost).
_EDGE_TOLERANCE_SAMPLES = 1.5


@dataclass(frozen=True)
class TraceTiming:
    """One inference's stage times moved onto the trace axis (µs; duck-types `StageTiming`)."""

    start_us: float
    readout_us: float
    inference_us: float
    retrieval_us: float


@dataclass(frozen=True)
class DigitalMap:
    """trace_t = offset_s + ratio · device_t, fitted to the digital channel's edges."""

    offset_s: float
    ratio: float  # monitor seconds per device second
    residual_s: float  # rms distance of the edges from the line
    edges: int


def digital_edges_s(time_s: ArrayLike, digital: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(rising, falling) edge instants in seconds: half a sample before the first sample that reads the new
    level (the line changed somewhere in the interval between two samples; its midpoint is the unbiased
    estimate). Shapes (r,), (f,)."""
    t = np.asarray(time_s, dtype=np.float64)
    d = np.asarray(digital, dtype=bool)
    if t.shape != d.shape or t.size < 2:
        raise MeasurementError(f"digital channel {d.shape} and time axis {t.shape} must be equal 1-D arrays "
                               "of >= 2 samples; capture again")
    dt = float(t[-1] - t[0]) / (t.size - 1)
    change = d[1:] != d[:-1]
    rising = np.flatnonzero(change & d[1:]) + 1
    falling = np.flatnonzero(change & ~d[1:]) + 1
    return t[rising] - dt / 2, t[falling] - dt / 2


def fit_digital_map(time_s: ArrayLike, digital: ArrayLike, timings: Iterable[Any]) -> DigitalMap:
    """The line from device time (the RUN's `start_us` axis) to trace time through the digital edges.

    The RUN's inferences are the channel's last whole pulses (earlier ones belong to activity before the
    RUN). Raises WindowMisplaced when the channel holds fewer whole pulses than the RUN has inferences, or
    an edge sits off the fitted line by more than 1.5 samples: the channel is then not this device's
    trigger line, or the stream lost samples.
    """
    t = np.asarray(time_s, dtype=np.float64)
    rows = [(x.start_us, x.inference_us) for x in timings]
    rises, falls = digital_edges_s(t, digital)
    dt = float(t[-1] - t[0]) / (t.size - 1)
    if falls.size and rises.size and falls[0] < rises[0]:
        falls = falls[1:]  # the line was already high when the stream began: not one of this RUN's pulses
    rises = rises[:falls.size]  # a pulse still high at the stream's end is not a whole inference
    if rises.size < len(rows):
        raise WindowMisplaced(
            f"the digital channel shows {rises.size} whole pulses, the RUN reported {len(rows)} inferences: check "
            "that the monitor's digital input is wired to this device's trigger line and that the stream covers "
            "the whole RUN")
    # A stream starts before the RUN (a monitor streams from arm on) and may hold earlier pulses: the RUN is
    # the device's last activity, so its inferences are the last pulses. The line fit below checks the match.
    rises, falls = rises[rises.size - len(rows):], falls[falls.size - len(rows):]
    device_s = np.array(rows, dtype=np.float64) * 1e-6
    x = np.concatenate([device_s[:, 0], device_s[:, 0] + device_s[:, 1]])
    y = np.concatenate([rises, falls])
    if len(rows) >= 2 or np.ptp(x) > 0:
        ratio, offset = np.polyfit(x, y, 1)
    else:  # pragma: no cover - a RUN of one inference still has two distinct edges
        ratio, offset = 1.0, float(np.mean(y - x))
    residual = y - (offset + ratio * x)
    worst = int(np.argmax(np.abs(residual)))
    if abs(residual[worst]) > _EDGE_TOLERANCE_SAMPLES * dt:
        raise WindowMisplaced(
            f"a trigger edge in the digital channel at {y[worst] * 1e3:.4f} ms sits {residual[worst] * 1e6:+.1f} µs "
            f"off the line through all the others (tolerance {_EDGE_TOLERANCE_SAMPLES * dt * 1e6:.1f} µs): the "
            "device's timings and its trigger line disagree; check the wiring and that no stream data was lost")
    return DigitalMap(float(offset), float(ratio), float(np.sqrt(np.mean(residual ** 2))), int(y.size))


def timings_on_trace(timings: Iterable[Any], digital_map: DigitalMap) -> list[TraceTiming]:
    """Each inference's four edges moved through the map onto the trace axis (µs)."""
    out = []
    for x in timings:
        e0, e1, e2, e3 = (digital_map.offset_s + digital_map.ratio * v * 1e-6 for v in (
            x.start_us - x.readout_us, x.start_us, x.start_us + x.inference_us,
            x.start_us + x.inference_us + x.retrieval_us))
        out.append(TraceTiming(e1 * 1e6, (e1 - e0) * 1e6, (e2 - e1) * 1e6, (e3 - e2) * 1e6))
    return out


def energy_from_digital(time_s: ArrayLike, power_w: ArrayLike, digital: ArrayLike, timings: Iterable[Any], *,
                        per_inference: bool = True) -> EnergySamples:
    """Energy of every inference of a RUN with its windows placed from the digital channel.

    `per_inference` False measures one run window (back-to-back inferences / their number) as
    `run_energy_from_trace` does. The returned `clock_ratio` is monitor seconds per device second from the
    digital edges (times the locator's residual ratio, ≈ 1). Raises what `fit_digital_map` and
    `energy_from_trace` raise.
    """
    timing_list = list(timings)
    digital_map = fit_digital_map(time_s, digital, timing_list)
    moved = timings_on_trace(timing_list, digital_map)
    estimate = energy_from_trace if per_inference else run_energy_from_trace
    samples = estimate(time_s, power_w, moved)
    return replace(samples, clock_ratio=samples.clock_ratio * digital_map.ratio)
