"""The run window of an analyzer too slow for per-inference windows: its two edges, placed and priced.

One window over back-to-back inferences, from the second inference's retrieval end (the third one's readout
start) to the last one's retrieval end, divided by the inferences it holds (MLPerf Tiny's way; the 2281S's
1 ms readings, the LPM01A without pre-trigger samples). Its edges are placed where the trace can say so:

- The end is the RUN's last step back to idle: the last reading not at idle holds it (searched where the
  device's clock puts it, give or take an RC oscillator's 0.5 %), priced from idle's side (`_run_end`).
- The start often has no step at all (Coral's readout and retrieval draw one power). A locator asked for it
  alone takes the nearest step for it: at 1 ms the inference→retrieval step 0.63 ms before, which put the
  window 0.63 ms early and read Q-Segment +0.49 to +0.75 % (and a clock fitted to those steps 1.003 on a
  bench whose clocks agree). It is placed instead from the trigger (t = 0, device time 0) by the device's
  clock, whose error over the few tens of ms to it is small and bounded (0.5 %), and priced step-aware from
  the stage after it. (The RUN's end pins the clock only to a reading over the RUN: 0.8 % at 1 ms in 124 ms.)

Pure functions on arrays; seconds, watts, joules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_edgehil.errors import CannotResolve, WindowMisplaced
from pytest_edgehil.measure.clock_map import CLOCK_TOLERANCE
from pytest_edgehil.measure.edge_locator import cumulative_energy, noise_w, step_aware_cumulative

RUN_WINDOW_NAME = "run window (end-to-end, back-to-back inferences)"
# Where a run window's edges come from, as its records say it (`EnergyMeasurement.window_source`): no clock
# is fitted (the RUN's end pins none closer than a reading over the RUN); the start is the device's account
# from t = 0 (the analyzer's trigger, or in a trigger-less stream the RUN's first power step), read by its
# clock within the bound the meter allows, and the end is located in the trace.
RUN_WINDOW_SOURCE_TRIGGER = (f"run window: start placed from the trigger by the device clock (within "
                             f"{CLOCK_TOLERANCE * 100:g} %), end at the RUN's last step to idle")
RUN_WINDOW_SOURCE_RUN_START = (f"run window: start placed from the RUN's first power step by the device clock "
                               f"(within {CLOCK_TOLERANCE * 100:g} %), end at the RUN's last step to idle")
# A reading departs from idle when it stands this many noise sigmas and this fraction of the RUN's level off it
# (as `edge_locator` counts a step).
_MIN_STEP_SIGMAS = 8.0
_MIN_STEP_REL = 0.02


@dataclass(frozen=True)
class RunWindow:
    """One run window's energy (J) and 1-σ uncertainty (J), its length on the trace (s), and the clock ratio
    (analyzer s per device s) that placed its start with its 1-σ: the device's clock, 1, within the 0.5 % the
    meter allows (checked against the RUN's end, which pins it no closer than a reading over the RUN)."""

    energy_j: float
    u_j: float
    length_s: float
    clock_ratio: float
    clock_ratio_u: float


def run_window_energy(time_s: np.ndarray, power_w: np.ndarray, start_dev_s: float, end_dev_s: float, *,
                      next_stage_s: float, tick_s: float, fix: str) -> RunWindow:
    """Energy of the window [start_dev_s, end_dev_s] (device seconds since the trigger, t = 0 of the trace).

    `end_dev_s` must be the RUN's last edge (its last retrieval's end, back to idle), and that last stage must
    draw distinctly more or less than idle (a retrieval at idle's power ends the RUN where no trace can see it);
    `next_stage_s` is the stage after `start_dev_s` (the next readout, device s), `tick_s` the device timer's
    tick. Raises CannotResolve (with `fix`) where the RUN's last step back to idle does not show in the trace,
    the record ends before idle has settled, or the window holds fewer than two samples; WindowMisplaced where
    that step sits further from the device's account than the 0.5 % clock the meter allows.
    """
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    bounds, cum, dt = cumulative_energy(t, p)
    interval = (float(start_dev_s), float(end_dev_s))
    end_s, end_j, end_bound_j = _run_end(p, bounds, cum, dt, end_dev_s, tick_s, interval, fix)
    # The end pins the clock only to a reading over the RUN (1 ms in 124 ms: 0.8 %), no better than an RC
    # oscillator's 0.5 %: the start is placed by the device's clock from the trigger, its drift bounded by that.
    ratio, ratio_u = 1.0, CLOCK_TOLERANCE / np.sqrt(3.0)
    start_s = ratio * start_dev_s
    if end_s - start_s < 2 * dt:
        raise CannotResolve(RUN_WINDOW_NAME, (start_s, end_s), dt, "the window holds fewer than two samples", fix)
    start_j = step_aware_cumulative(p, bounds, cum, start_s, dt)
    j = int(np.clip(np.floor((start_s - bounds[0]) / dt), 0, p.size - 2))
    # The start's error budget: the clock's bound over the distance from the trigger, and the stamp's, a
    # difference of two stamps each floored to the tick (the trigger's and the edge's): within ±tick,
    # triangular (σ tick/√6). The true start lies anywhere within that reach (and a sample), and moving it
    # moves the energy by the power where it lands: priced at the largest within reach, not at the two samples
    # where the stamp put it (behind a 1 ms timer the stamp fell 0.49 ms early in the IMX500's 0.07 W
    # inference while the missed part was its 0.27 W retrieval: +0.28 % read against 0.09 % stated).
    reach_s = CLOCK_TOLERANCE * abs(start_dev_s) + tick_s + dt
    j0 = int(np.clip(np.floor((start_s - reach_s - bounds[0]) / dt), 0, p.size - 2))
    j1 = int(np.clip(np.floor((start_s + reach_s - bounds[0]) / dt), j0, p.size - 2))
    level_w = float(np.max(np.abs(p[j0:j1 + 2])))
    start_u_s = float(np.hypot(ratio_u * start_dev_s, tick_s / np.sqrt(6.0)))
    # Priced step-aware: the straddling reading's part after the start at the next reading's level, exact where
    # the stage after the start fills that reading; a shorter one mixes it with the stage after that.
    mixed_j = 0.0 if next_stage_s >= 2 * dt else float(np.max(np.abs(p[j:j + 2]))) * dt
    cells = (end_s - start_s) / dt
    u_j = float(np.sqrt((noise_w(p) * dt) ** 2 * cells + end_bound_j ** 2 / 3.0 + (level_w * start_u_s) ** 2
                        + mixed_j ** 2 / 3.0))
    return RunWindow(float(end_j - start_j), u_j, float(end_s - start_s), ratio, float(ratio_u))


def _run_end(p: np.ndarray, bounds: np.ndarray, cum: np.ndarray, dt: float, end_dev_s: float, tick_s: float,
             interval: tuple[float, float], fix: str) -> tuple[float, float, float]:
    """(trace time s of the RUN's last step back to idle, the energy J up to it, the bound J of that energy).

    Each reading integrates its interval, so the step lies in the last reading not at idle, and the energy up
    to any instant x in it is everything up to that reading's end less idle's energy from x on: only idle's
    energy over part of one reading is in doubt, whatever the stages before it drew. (An energy centroid reads
    the level before the step from the readings before it; a last stage shorter than a reading is read as the
    one before, and the centroid moved 0.2-0.7 ms on the IMX500 twin.) x is taken at the reading's own split of
    its mean between the level before and idle, within the reading.
    """
    search_s = CLOCK_TOLERANCE * end_dev_s + tick_s + 2 * dt
    j_lo = int(np.floor((end_dev_s - search_s - bounds[0]) / dt))
    j_hi = int(np.ceil((end_dev_s + search_s - bounds[0]) / dt))
    tail = p[j_hi + 1:j_hi + 5]
    if j_lo < 1 or tail.size < 2:
        raise CannotResolve(RUN_WINDOW_NAME, interval, dt,
                            "the record ends before idle has settled after the RUN's last step back to it (or starts "
                            "after it), so the window's end cannot be priced", "acquire a longer record; " + fix)
    idle_w = float(np.median(tail))
    active = p[j_lo - 1:j_hi + 1]
    threshold_w = max(_MIN_STEP_SIGMAS * noise_w(p), _MIN_STEP_REL * float(np.max(np.abs(active))))
    away = np.flatnonzero(np.abs(active - idle_w) > threshold_w)
    if away.size == 0 or np.any(np.abs(tail - idle_w) > threshold_w):
        raise CannotResolve(RUN_WINDOW_NAME, interval, dt,
                            f"the RUN's last step back to idle does not show in the trace: no reading within "
                            f"{search_s * 1e3:.3g} ms of the device's {end_dev_s * 1e3:.4f} ms steps from a settled idle "
                            f"level ({idle_w:.4g} W, threshold {threshold_w:.3g} W), so nothing pins the window's end",
                            "check that the board returns to idle after the RUN and that the record holds it; " + fix)
    k = j_lo - 1 + int(away[-1])
    before_w = float(p[k - 1])
    share = (p[k] - idle_w) / (before_w - idle_w) if before_w != idle_w else 0.5
    end_s = float(bounds[k] + dt * np.clip(share, 0.0, 1.0))
    end_j = float(cum[k + 1] - idle_w * (bounds[k + 1] - end_s))
    bound_s = max(end_s - bounds[k], bounds[k + 1] - end_s)
    if abs(end_s - end_dev_s) > CLOCK_TOLERANCE * end_dev_s + bound_s + tick_s:
        raise WindowMisplaced(
            f"the RUN's last step back to idle shows at {end_s * 1e3:.4f} ms after the trigger (within "
            f"{bound_s * 1e3:.3g} ms), but the device puts its last retrieval's end at {end_dev_s * 1e3:.4f} ms: its "
            f"clock runs {(end_dev_s / end_s - 1) * 100:+.2f} % against the analyzer, beyond the {CLOCK_TOLERANCE:.1%} "
            "the meter allows where it places the window's start by that clock. Check that the trigger line belongs "
            "to this device and that the record holds the RUN it was fetched for; then the board's clock source: a timer on an "
            "RC oscillator (±1-2 %) needs a crystal-clocked timer, or a digitizing analyzer (N6705C/N678xA, NGM202) "
            "whose located edges fit the clock")
    # A sliver of the step in the next reading, below the threshold, is at most that threshold's energy.
    return end_s, end_j, abs(idle_w) * bound_s + threshold_w * dt
