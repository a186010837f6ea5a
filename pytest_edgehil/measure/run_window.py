"""The run window of an analyzer too slow for per-inference windows: its two edges, placed and priced.

One window over back-to-back inferences, from the second inference's retrieval end (the third one's readout
start) to the last one's retrieval end, divided by the inferences it holds (MLPerf Tiny's way; the 2281S's
1 ms readings, the LPM01A without pre-trigger samples). Its edges are placed where the trace can say so:

- The end is the RUN's last step back to idle, the tallest step in the RUN: its energy centroid
  (`edge_locator`), searched where the device's clock puts it give or take an RC oscillator's 0.5 %.
- The start often has no step at all (Coral's readout and retrieval draw one power). A locator asked for it
  alone takes the nearest step for it: at 1 ms the inference→retrieval step 0.63 ms before, which put the
  window 0.63 ms early and read Q-Segment +0.49 to +0.75 % (and a clock fitted to those steps 1.003 on a
  bench whose clocks agree). It is placed instead by the clock between the two instants the trace pins:
  the trigger (t = 0, device time 0) and the RUN's end, i.e. at ratio · device time with the ratio the
  end's centroid over its device time; and priced step-aware from the stage after it.

Pure functions on arrays; seconds, watts, joules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_edgehil.errors import CannotResolve, WindowMisplaced
from pytest_edgehil.measure.edge_locator import EdgeLocator, cumulative_energy, noise_w, step_aware_cumulative
from pytest_edgehil.measure.trace_windows import CLOCK_TOLERANCE

RUN_WINDOW_NAME = "run window (end-to-end, back-to-back inferences)"


@dataclass(frozen=True)
class RunWindow:
    """One run window's energy (J) and 1-σ uncertainty (J), its length on the trace (s), and the clock ratio
    (analyzer s per device s) and its 1-σ the trigger and the RUN's end give."""

    energy_j: float
    u_j: float
    length_s: float
    clock_ratio: float
    clock_ratio_u: float


def run_window_energy(time_s: np.ndarray, power_w: np.ndarray, start_dev_s: float, end_dev_s: float, *,
                      last_stage_s: float, next_stage_s: float, tick_s: float, fix: str) -> RunWindow:
    """Energy of the window [start_dev_s, end_dev_s] (device seconds since the trigger, t = 0 of the trace).

    `end_dev_s` must be the RUN's last edge (its last retrieval's end, back to idle); `last_stage_s` is the
    stage before it (the last retrieval, device s), `next_stage_s` the stage after `start_dev_s` (the next
    readout), `tick_s` the device timer's tick. Raises CannotResolve (with `fix`) where the RUN's last step
    back to idle does not show in the trace or the window holds fewer than two samples, WindowMisplaced where
    that step sits further from the device's account than the 0.5 % clock the meter allows.
    """
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    bounds, cum, dt = cumulative_energy(t, p)
    noise = noise_w(p)
    interval = (float(start_dev_s), float(end_dev_s))
    locator = EdgeLocator(p, bounds, cum, dt, noise)
    dev = np.array([end_dev_s])
    # Searched over the clock error the meter allows, then read again in a region centred where it was found.
    hit = locator.locate(dev, 0, 0.0, 1.0, CLOCK_TOLERANCE * end_dev_s + tick_s)
    if hit is not None:
        hit = locator.locate(dev, 0, hit[0] - end_dev_s, 1.0, 0.0) or hit
    if hit is None:
        raise CannotResolve(RUN_WINDOW_NAME, interval, dt,
                            "the RUN's last step back to idle does not show in the trace (no step where the device's "
                            "clock puts it, or the record ends before idle has settled), so nothing pins the window's "
                            "end", "acquire a longer record so it ends at idle after the RUN; " + fix)
    centroid_s = hit[0]
    # The centroid reads the level before the step from the region's first samples; a last stage shorter than
    # that region (Coral's 0.63 ms retrieval in 1 ms readings, the IMX500's 0.23 ms inference beside it) moves
    # it by that stage's length times its level's difference over the step (0.2-0.7 ms on the IMX500 twin).
    # What the samples do pin: the step lies in the last sample not at idle (each reading integrates its
    # interval), and the energy up to any instant x in it is everything up to that sample's end less idle's
    # energy from x on. So x is taken there, nearest the centroid, and idle's energy over the rest of that
    # sample is what is in doubt (a sliver below the step threshold adds that threshold's energy).
    j_c = int(np.clip(np.floor((centroid_s - bounds[0]) / dt), 0, p.size - 1))
    tail = p[j_c + 2:j_c + 6]
    if tail.size < 2:
        raise CannotResolve(RUN_WINDOW_NAME, interval, dt,
                            "the record ends before idle has settled after the RUN's last step back to it, so the "
                            "window's end cannot be priced", "acquire a longer record; " + fix)
    idle_w = float(np.median(tail))
    threshold_w = locator.min_step_w(idle_w, float(np.max(np.abs(p[max(j_c - 3, 0):j_c + 1]))))
    away = np.flatnonzero(np.abs(p[:j_c + 6] - idle_w) > threshold_w)
    k = int(away[-1]) if away.size else j_c
    end_s = float(np.clip(centroid_s, bounds[k], bounds[k + 1]))
    end_j = float(cum[k + 1] - idle_w * (bounds[k + 1] - end_s))
    end_bound_s = max(end_s - bounds[k], bounds[k + 1] - end_s)
    end_bound_j = abs(idle_w) * end_bound_s + threshold_w * dt
    seen_ratio = end_s / end_dev_s
    if abs(seen_ratio - 1.0) > CLOCK_TOLERANCE + (end_bound_s + dt + tick_s) / end_dev_s:
        raise WindowMisplaced(
            f"the RUN's last step back to idle shows at {end_s * 1e3:.4f} ms after the trigger, but the device puts "
            f"its last retrieval's end at {end_dev_s * 1e3:.4f} ms: a clock ratio of {seen_ratio:.6f}, beyond the "
            f"{CLOCK_TOLERANCE:.1%} the meter allows. Check that the trigger line belongs to this device and that "
            "the record holds the RUN it was fetched for; then the board's clock source")
    # That end pins the clock only to a sample over the RUN (1 ms in 124 ms: 0.8 %), no better than an RC
    # oscillator's 0.5 %: the start is placed by the device's clock from the trigger, its error bounded by that.
    ratio, ratio_u = 1.0, CLOCK_TOLERANCE / np.sqrt(3.0)
    # The start, placed by that clock: off by the ratio's error over its device time (and a tick of its stamp).
    start_s = ratio * start_dev_s
    if end_s - start_s < 2 * dt:
        raise CannotResolve(RUN_WINDOW_NAME, (start_s, end_s), dt, "the window holds fewer than two samples", fix)
    start_j = step_aware_cumulative(p, bounds, cum, start_s, dt)
    j = int(np.clip(np.floor((start_s - bounds[0]) / dt), 0, p.size - 2))
    level_w = float(np.max(np.abs(p[j:j + 2])))
    start_u_s = float(np.hypot(ratio_u * start_dev_s, tick_s / np.sqrt(12.0)))
    # Priced step-aware: the straddling sample's part after the start at the next sample's level, exact where
    # the stage after the start fills that sample; a shorter one mixes it with the stage after that.
    mixed_j = 0.0 if next_stage_s >= 2 * dt else level_w * dt
    energy_j = end_j - start_j
    cells = (end_s - start_s) / dt
    u_j = float(np.sqrt((noise * dt) ** 2 * cells + end_bound_j ** 2 / 3.0 + (level_w * start_u_s) ** 2
                        + mixed_j ** 2 / 3.0))
    return RunWindow(float(energy_j), u_j, float(end_s - start_s), float(ratio), float(ratio_u))
