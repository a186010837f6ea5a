"""What the analyzer twin digitizes: the device timeline's power averaged per sample, plus noise.

Sampling model: each sample is the exact mean power over its own interval [t - dt/2, t + dt/2], as
an integrating ADC would give. For a step-wise power function the samples are then the step function
smoothed by one sample period, so the trapezoidal rule over the samples reproduces the true energy
of any span whose edges sit at least dt/2 inside the window: the truth is plain
`ActivityTimeline.energy_between` (no ramps to account for). On top: Gaussian noise (seeded),
current = P / V at the output's voltage, the instrument's own offset and gain errors
(`sim.instrument_errors`: none unless given), and quantization to range / 2**adc_bits.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

import numpy as np

from pytest_edgehil.sim.instrument_errors import InstrumentErrors
from pytest_edgehil.sim.timeline import StageSpan


@dataclass(frozen=True)
class CaptureWindow:
    """What the twin synthesized, in the device's virtual time."""

    trigger_s: float
    t0_s: float  # first sample instant
    t1_s: float  # end of the window: t0_s + points * sample_interval_s
    sample_interval_s: float
    points: int
    pretrigger_points: int


def _end_s(span: StageSpan) -> float:
    return span.end_s


def mean_power_per_sample(spans: list[StageSpan], idle_power_w: float, t0_s: float,
                          sample_interval_s: float, points: int) -> np.ndarray:
    """Exact mean power over [t_i - dt/2, t_i + dt/2] for t_i = t0 + i*dt (idle outside spans)."""
    dt = sample_interval_s
    start_s = t0_s - dt / 2
    end_rel_s = points * dt
    # Cumulative energy is piecewise linear between span edges; build its knots relative to the
    # window start so that differences of nearby values keep full float64 precision.
    knot_t, knot_e = [0.0], [0.0]
    cursor, energy = 0.0, 0.0
    # Spans are in time order (the timeline's rule): skip those ending before the window by bisection
    # and stop at the first starting after it, instead of walking every span since start-up.
    first = bisect.bisect_right(spans, start_s, key=_end_s)
    for span in itertools.islice(spans, first, None):
        if span.start_s - start_s >= end_rel_s:
            break
        lo, hi = max(span.start_s - start_s, 0.0), min(span.end_s - start_s, end_rel_s)
        if hi <= lo:
            continue
        if lo > cursor:
            energy += idle_power_w * (lo - cursor)
            knot_t.append(lo)
            knot_e.append(energy)
        energy += span.power_w * (hi - lo)
        knot_t.append(hi)
        knot_e.append(energy)
        cursor = hi
    if cursor < end_rel_s:
        knot_t.append(end_rel_s)
        knot_e.append(energy + idle_power_w * (end_rel_s - cursor))
    edges = np.arange(points + 1) * dt
    return np.diff(np.interp(edges, knot_t, knot_e)) / dt


def digitize(power_w: np.ndarray, *, voltage_v: float, current_full_scale_a: float,
             voltage_full_scale_v: float, rng: np.random.Generator, noise_rel: float,
             adc_bits: int, errors: InstrumentErrors | None = None,
             instants_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(current_a, voltage_v) as float32 readings of a supply programmed to `voltage_v` delivering `power_w`,
    read with `errors` (the instrument's own; none by default) at `instants_s` (s, for its drift)."""
    errors = errors or InstrumentErrors.exact()
    output_v = errors.output_voltage_v(voltage_v)  # where the output really is: the load's current follows it
    current_a = power_w / output_v if output_v > 0 else np.zeros_like(power_w)
    current_a = current_a * (1.0 + noise_rel * rng.standard_normal(current_a.size))
    if not errors.exact_instrument:
        at_s = instants_s if instants_s is not None else np.zeros(current_a.size)
        current_a = errors.read_current_a(current_a, at_s, current_full_scale_a)
    volts = errors.read_voltage_v(output_v) * (1.0 + 0.1 * noise_rel * rng.standard_normal(current_a.size))
    current_lsb = current_full_scale_a / 2**adc_bits
    voltage_lsb = voltage_full_scale_v / 2**adc_bits
    # A real ADC saturates a little past full scale rather than reporting any value.
    current_a = np.clip(np.round(current_a / current_lsb) * current_lsb,
                        -1.05 * current_full_scale_a, 1.05 * current_full_scale_a)
    volts = np.round(volts / voltage_lsb) * voltage_lsb
    return current_a.astype(np.float32), volts.astype(np.float32)


def overload_and_pin(current_a: np.ndarray, *, full_scale_a: float, overload: float) -> np.ndarray:
    """The capture of a device drawing `overload` x the range at its peak, read by an ADC that pins
    at the range limit: scaled so that the peak is `overload * full_scale_a`, then clipped there."""
    peak_a = float(np.max(np.abs(current_a))) if current_a.size else 0.0
    scale = overload * full_scale_a / peak_a if peak_a > 0 else 0.0
    scaled = current_a.astype(np.float64) * scale if scale else np.full(current_a.shape, overload * full_scale_a)
    return np.clip(scaled, -full_scale_a, full_scale_a).astype(np.float32)
