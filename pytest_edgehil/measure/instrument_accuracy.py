"""The instrument's own DC accuracy in every window's stated uncertainty, and the refusal of a window it swamps.

A current offset or gain error shifts every sample alike: no trace shows it, so the trace-derived
uncertainty (noise, edges, clock fit) never held it, and a 250 µA offset on an N6781A's 3 A range moved
Q-Segment's 0.23 ms inference +1.25 % while 0.14 % was stated. The data sheet bounds it. A window of energy E
over t seconds at mean voltage V (mean current I = E / (V·t)) is off by at most

    B = (g_I + g_V)·|E| + o_I·V·t + o_V·|I|·t

with g_I, o_I the gain and offset of the current range the samples were read on (the programmed range, or
for an autoranging instrument the one holding I), and g_V, o_V the voltage's (its reading's, or the output's
setpoint accuracy where the trace carries the programmed voltage). The product's second-order term
g_I·g_V·E (1e-7 of E for an N6781A) is left out.

How it is stated (GUM, JCGM 100:2008, 4.3.7): B is a limit, the error one draw within it for the whole
session, so it enters the window's standard uncertainty as a rectangular distribution's, B/√3, in quadrature
with the trace's own 1-σ part (`EnergySamples.*_u_j` stays a standard uncertainty). B itself is kept
(`*_instrument_j`) for what needs the worst case: a window whose B exceeds what its budget tolerates is
refused (`instrument_refusal`), naming the instrument, its range and a range that would do.

Pure functions on arrays; joules, seconds, volts, amperes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from pytest_edgehil.errors import CannotResolve
from pytest_edgehil.instruments.accuracy import CaptureAccuracy
from pytest_edgehil.measure.energy import EnergySamples

# A limit taken as a rectangular distribution has a standard uncertainty of limit / √3 (GUM 4.3.7).
RECTANGULAR = 1.0 / math.sqrt(3.0)


def window_limits_j(energy_j: np.ndarray, length_s: np.ndarray, voltage_v: float,
                    accuracy: CaptureAccuracy) -> np.ndarray:
    """B (J) of each window (see the module text): energies `energy_j`, lengths `length_s` (s), the trace's
    mean voltage `voltage_v` (V)."""
    energy = np.asarray(energy_j, dtype=np.float64)
    length = np.asarray(length_s, dtype=np.float64)
    volts = abs(float(voltage_v))
    if volts <= 0:
        return np.full(energy.shape, np.inf)  # no voltage: no current can be told from a power
    current_a = np.divide(energy, volts * length, out=np.zeros_like(energy), where=length > 0)
    gain = np.array([accuracy.current(i).accuracy.gain_rel for i in current_a.reshape(-1)]).reshape(energy.shape)
    offset_a = np.array([accuracy.current(i).accuracy.offset for i in current_a.reshape(-1)]).reshape(energy.shape)
    v = accuracy.voltage
    return ((gain + v.gain_rel) * np.abs(energy) + offset_a * volts * length
            + v.offset * np.abs(current_a) * length)


def window_lengths_s(energy_j: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """Each window's length (s) from its energy and mean power (0 where the power is 0)."""
    energy = np.asarray(energy_j, dtype=np.float64)
    power = np.asarray(power_w, dtype=np.float64)
    return np.divide(energy, power, out=np.zeros_like(energy), where=power != 0)


def with_instrument(samples: EnergySamples, accuracy: CaptureAccuracy, voltage_v: float) -> EnergySamples:
    """`samples` with each window's instrument limit (`*_instrument_j`) and its uncertainty in `*_u_j`."""
    inference_b = window_limits_j(samples.inference_j, window_lengths_s(samples.inference_j, samples.inference_power_w),
                                  voltage_v, accuracy)
    e2e_b = window_limits_j(samples.end_to_end_j, window_lengths_s(samples.end_to_end_j, samples.end_to_end_power_w),
                            voltage_v, accuracy)
    return replace(samples,
                   inference_u_j=_combined(samples.inference_u_j, inference_b),
                   end_to_end_u_j=_combined(samples.end_to_end_u_j, e2e_b),
                   inference_instrument_j=inference_b, end_to_end_instrument_j=e2e_b)


def _combined(u_j: np.ndarray, limit_j: np.ndarray) -> np.ndarray:
    u = np.asarray(u_j, dtype=np.float64)
    if u.shape != limit_j.shape:  # a producer that states no per-window uncertainty: the instrument's alone
        u = np.zeros_like(limit_j)
    return np.sqrt(u ** 2 + (RECTANGULAR * limit_j) ** 2)


def instrument_refusal(names: Sequence[str], windows_s: np.ndarray, energy_j: np.ndarray, limit_j: np.ndarray,
                       accuracy: CaptureAccuracy, *, max_rel: float, voltage_v: float, peak_current_a: float,
                       sample_interval_s: float) -> CannotResolve | None:
    """The refusal of the first window whose instrument limit exceeds `max_rel` of its energy (the tolerance
    its budget allows), else None. `windows_s` (m, 2) locate the windows for the message; `peak_current_a`
    (the capture's largest current) decides which range would hold it."""
    energy = np.asarray(energy_j, dtype=np.float64)
    rel = np.divide(limit_j, np.abs(energy), out=np.full(energy.shape, np.inf), where=energy != 0)
    bad = np.flatnonzero(rel > max_rel)
    if bad.size == 0:
        return None
    w = int(bad[0])
    t0, t1 = (float(x) for x in windows_s[w])
    mean_a = float(energy[w]) / (abs(voltage_v) * (t1 - t0)) if voltage_v and t1 > t0 else 0.0
    reading = accuracy.current(mean_a)
    return CannotResolve(
        names[w], (t0, t1), sample_interval_s,
        f"the instrument's own accuracy, {accuracy.describe()}, may move its energy by up to {rel[w]:.2%} "
        f"(its mean current {mean_a * 1e3:.4g} mA against the {reading.full_scale_a:g} A range's offset of "
        f"{reading.accuracy.offset * 1e6:.3g} µA), more than the {max_rel:.2%} its budget tolerates ({bad.size} of "
        f"{len(names)} windows are): it cannot be stated to better than that on this instrument",
        _fix(accuracy, peak_current_a, mean_a))


def _fix(accuracy: CaptureAccuracy, peak_current_a: float, mean_a: float) -> str:
    """A lower range that holds the capture's peak, where the instrument has one; else a finer instrument."""
    spec = accuracy.spec
    if not spec.autoranging and accuracy.range_a is not None:
        holding = spec.range_for(peak_current_a * 1.05) if peak_current_a * 1.05 <= spec.current_ranges[-1].full_scale_a \
            else spec.current_ranges[-1]
        if holding.full_scale_a < accuracy.range_a:
            return (f"program the {holding.full_scale_a:g} A range: set the lab file's `current_range_a` to at most "
                    f"{holding.full_scale_a:g} (the capture peaks at {peak_current_a * 1e3:.4g} mA, which that range "
                    f"holds; its accuracy is {holding.accuracy.text('A')}), or measure with a monitor with a finer "
                    f"range at {mean_a * 1e3:.3g} mA")
    return (f"measure with an instrument or monitor whose range at {mean_a * 1e3:.3g} mA is finer (a smaller "
            "offset there), or widen the budget's tolerance if this instrument is what the lab has")
