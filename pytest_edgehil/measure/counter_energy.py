"""Energy per inference from an energy counter read before and after a run: Δcounter / n.

A counter (powercap RAPL `energy_uj`, hwmon `energyN_input`, NVML's total energy, or an agent's trapezoid
integral of a power-only rail) is coarse in two ways: its resolution (one count) and its update period
(the value changes only every so often, so a read shows the energy up to the last update). Over a window
of length T the error is at most one update period's energy at each end plus a count at each end:
`min_window_s` asks for T long enough that this stays under `rel` of the window's energy, and
`energy_per_inference_j` refuses (CannotResolve) a shorter window, naming the counter and the number of
inferences that would resolve it. Pure functions; µJ and seconds in, joules out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_edgehil.errors import CannotResolve, MeasurementError

DEFAULT_REL = 0.01  # 1 % of the window's energy at most from the counter's granularity


@dataclass(frozen=True)
class CounterReading:
    """One read of a counter: its value (µJ) and the board's monotonic time (s) of the read."""

    energy_uj: int
    time_s: float


@dataclass(frozen=True)
class CounterSpec:
    """What bounds a counter's error: `resolution_uj` (one count), `update_s` (how often its value changes,
    or an integrated rail's largest sample gap plus the rail's own update period), `max_range_uj` (where it
    wraps to 0; 0 = never, e.g. values already unwrapped by the agent)."""

    kind: str
    name: str
    max_range_uj: int
    resolution_uj: float
    update_s: float


def delta_uj(counter: CounterSpec, start: CounterReading, end: CounterReading, *, max_power_w: float) -> int:
    """Energy between two reads (µJ), across at most one wrap of the counter.

    A window in which the counter could have wrapped more than once (max_power_w × window > range) cannot
    be told apart from one with fewer wraps: CannotResolve, asking for shorter windows. A counter without a
    wrap range that runs backwards was reset: MeasurementError.
    """
    window_s = end.time_s - start.time_s
    if counter.max_range_uj and max_power_w * window_s * 1e6 >= counter.max_range_uj:
        raise CannotResolve(f"{counter.name} window", (start.time_s, end.time_s), counter.update_s,
                            f"at up to {max_power_w:g} W the counter may wrap more than once in "
                            f"{window_s:.3g} s (range {counter.max_range_uj / 1e6:.6g} J)",
                            "measure shorter windows (several RUNs, one per window)")
    diff = end.energy_uj - start.energy_uj
    if diff < 0:
        if not counter.max_range_uj:
            raise MeasurementError(f"energy counter {counter.name} ran backwards ({start.energy_uj} then "
                                   f"{end.energy_uj} µJ) and declares no wrap range: the driver reset it; "
                                   "measure again")
        diff += counter.max_range_uj  # RAPL: wrapped once, back through 0
    return diff


def min_window_s(counter: CounterSpec, power_w: float, rel: float = DEFAULT_REL) -> float:
    """The shortest window whose counter granularity (an update period's energy at each end, plus one
    count at each end) stays under `rel` of the window's energy at `power_w`. ValueError for power <= 0."""
    if power_w <= 0:
        raise ValueError(f"power must be > 0 W, got {power_w}")
    return (2 * counter.update_s + 2 * counter.resolution_uj * 1e-6 / power_w) / rel


def min_inferences(counter: CounterSpec, period_s: float, power_w: float, rel: float = DEFAULT_REL) -> int:
    """How many back-to-back inferences of `period_s` fill `min_window_s` (at least 1)."""
    return max(1, math.ceil(min_window_s(counter, power_w, rel) / period_s))


def window_uncertainty_j(counter: CounterSpec, energy_j: float, window_s: float) -> float:
    """The bound on a window's counter error (J): an update period's energy at each end, at the window's
    mean power, plus one count at each end."""
    mean_w = energy_j / window_s if window_s > 0 else 0.0
    return 2 * counter.update_s * mean_w + 2 * counter.resolution_uj * 1e-6


def energy_per_inference_j(counter: CounterSpec, start: CounterReading, end: CounterReading, count: int, *,
                           max_power_w: float, rel: float = DEFAULT_REL) -> float:
    """Δcounter / count in joules. CannotResolve when the window is shorter than `min_window_s` at the
    window's own mean power (the counter's update period or resolution would exceed `rel`), or when it may
    have wrapped more than once; ValueError for count < 1."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    energy_uj = delta_uj(counter, start, end, max_power_w=max_power_w)
    window_s = end.time_s - start.time_s
    mean_w = energy_uj * 1e-6 / window_s if window_s > 0 else 0.0
    needed_s = min_window_s(counter, mean_w, rel) if mean_w > 0 else math.inf
    if window_s < needed_s:
        needed_n = (math.ceil(count * needed_s / window_s) if math.isfinite(needed_s) and window_s > 0
                    else "many more")
        raise CannotResolve(f"{counter.name} window", (start.time_s, end.time_s), counter.update_s,
                            f"the counter updates every {counter.update_s * 1e3:.3g} ms in steps of "
                            f"{counter.resolution_uj:g} µJ; {count} inference(s) over {window_s * 1e3:.4g} ms "
                            f"at {mean_w:.3g} W leave more than {rel * 100:.3g}% of the energy unresolved",
                            f"run at least {needed_n} inferences (>= {needed_s:.3g} s) per window")
    return energy_uj * 1e-6 / count
