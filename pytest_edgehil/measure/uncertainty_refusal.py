"""The refusal of windows the trace cannot check: edges it does not show, placed by an unpinned clock; and
edges priced beside stage power that is not flat, on a clock map its edge kinds disagree on.

An edge the trace shows is placed by its own power step. One it does not show sits where the clock map
puts it, and if no located edges pinned the map's ratio, the device's timer is all there is: an RC
oscillator 0.2 % off drifts a window 0.76 ms over a 0.4 s run (+240 % on TinyTracker's inference, silent,
before this check). `trace_windows.locate_edges` bounds each such edge's energy (`EdgeFit.drift_j`); a
window whose bound is a sizeable part of it is a plausible-looking wrong number: refused instead.

A located edge is priced from its flat side at its best position (`edge_pricing`); what that cannot average
away over a RUN (a side's level gradient, edge kinds that disagree on the map's offset with nothing to tell
which is right) is the window's systematic bound (`window_energies.window_systematic_j`): over the same
1 %, refused by `pricing_refusal`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_edgehil.errors import CannotResolve
from pytest_edgehil.measure.device_edges import edge_index
from pytest_edgehil.measure.point_sampling import first_window_over, windows_over
from pytest_edgehil.measure.trace_windows import EdgeFit
from pytest_edgehil.measure.window_energies import window_systematic_j

# A window whose edges, placed by a clock the trace did not pin, may be off by more than this fraction
# of its energy (worst case) is refused: the 1 % the meter promises (docs/measurement.md).
MAX_DRIFT_REL = 0.01
PLACEMENT_FIX = ("locate the windows from the trace: make the stage edges visible (a finer sample interval, "
                 "a stage that draws distinctly more or less than its neighbours) or wire the device's trigger "
                 "to the analyzer, or run fewer inferences per window so the device clock's error cannot add up")


def uncertainty_refusal(fit: EdgeFit, windows_dev_s: np.ndarray, energy_j: np.ndarray,
                        names: Sequence[str], max_rel: float = MAX_DRIFT_REL) -> CannotResolve | None:
    """The refusal of the first window whose edges' clock-drift bound (`EdgeFit.drift_j`, both ends)
    exceeds `max_rel` of its energy, else None."""
    if fit.drift_j is None or len(names) == 0:
        return None
    idx = edge_index(fit.device_s, windows_dev_s)
    rel, bad = windows_over(fit.drift_j[idx[:, 0]] + fit.drift_j[idx[:, 1]], energy_j, max_rel)
    if bad.size == 0:
        return None
    w = int(bad[0])
    i0, i1 = idx[w]
    unlocated = int(np.count_nonzero(~fit.located))
    interval = (float(fit.position_s[i0]), float(fit.position_s[i1]))
    tail = (f"so they may be off by up to {rel[w]:.1%} of its energy, over the {max_rel:.0%} a figure may carry "
            f"({bad.size} of {len(names)} windows are refused)")
    if fit.clock_pinned and fit.drift_s is not None:
        # The located edges pin the map: what is left of the bound is the stamps' own tick (each unlocated
        # edge's drift is exactly that), which no clock fit or wiring removes.
        tick_s = float(max(fit.drift_s[i0], fit.drift_s[i1]))
        return CannotResolve(
            names[w], interval, fit.sample_interval_s,
            f"the trace does not locate its edges at this sample interval ({unlocated} of {fit.device_s.size} stage "
            f"edges are not), so they sit where the device's stamps put them, and the device's timer floors each "
            f"stamp to its {tick_s * 1e6:.4g} µs tick (the located edges pin the clock itself); at the power beside "
            f"them a tick is a sizeable part of a {(interval[1] - interval[0]) * 1e6:.4g} µs window, {tail}",
            TICK_FIX)
    return CannotResolve(
        names[w], interval, fit.sample_interval_s,
        f"its edges are not visible in the trace ({unlocated} of {fit.device_s.size} stage edges sit where the "
        f"device's clock puts them, and the located ones do not pin that clock), {tail}", PLACEMENT_FIX)


TICK_FIX = ("use a finer sample interval (SENS:SWE:TINT; for a long window on an N6705C, fewer points per capture: "
            "shorter windows, more of them) so the trace locates every edge itself, or a finer device timer; or "
            "measure the stage's energy with a stage-only loop (many back-to-back inferences in one window, as "
            "MLPerf Tiny does) so the edges matter once per run")


PRICING_FIX = ("use a finer sample interval (SENS:SWE:TINT; where the digitizer's memory sets it, as for MLPerf "
               "Tiny's 10 s window on an N6705C, fewer points per capture: shorter windows, more of them) so that "
               "each edge's neighbouring samples are flat, or measure the stage's energy with a stage-only loop "
               "(many back-to-back inferences in one window, as MLPerf Tiny does) so the edges matter once per run")


def pricing_refusal(fit: EdgeFit, windows_dev_s: np.ndarray, energy_j: np.ndarray, names: Sequence[str],
                    max_rel: float = MAX_DRIFT_REL) -> CannotResolve | None:
    """The refusal of the first window whose systematic bound (its edges' level biases and the clock map's
    shared offset bound, `window_systematic_j`) exceeds `max_rel` of its energy, else None."""
    if len(names) == 0:
        return None
    idx = edge_index(fit.device_s, windows_dev_s)
    shared = (f"; its edge kinds also disagree on the device clock's offset by up to "
              f"{fit.map_systematic_s * 1e6:.3g} µs, and nothing in the trace says which is right"
              if fit.map_systematic_s > 0 else "")
    return first_window_over(fit, idx, window_systematic_j(fit, idx), energy_j, names, max_rel, lambda rel, refused: (
        f"the stage power beside its edges is not flat within a sample (per-op power as a stage starts or ends, "
        f"a spike): energy near an edge that flat levels do not account for, on a side the samples cannot "
        f"tell{shared}; so it may be off by up to {rel:.1%} of its energy, over the {max_rel:.0%} a figure "
        f"may carry ({refused} of {len(names)} windows are refused)"), PRICING_FIX)
