"""The refusal of windows the trace cannot check: edges it does not show, placed by an unpinned clock.

An edge the trace shows is placed by its own power step. One it does not show sits where the clock map
puts it, and if no located edges pinned the map's ratio, the device's timer is all there is: an RC
oscillator 0.2 % off drifts a window 0.76 ms over a 0.4 s run (+240 % on TinyTracker's inference, silent,
before this check). `trace_windows.locate_edges` bounds each such edge's energy (`EdgeFit.drift_j`); a
window whose bound is a sizeable part of it is a plausible-looking wrong number: refused instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_edgehil.errors import CannotResolve
from pytest_edgehil.measure.point_sampling import windows_over
from pytest_edgehil.measure.trace_windows import EdgeFit, edge_index

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
    return CannotResolve(
        names[w], (float(fit.position_s[i0]), float(fit.position_s[i1])), fit.sample_interval_s,
        f"its edges are not visible in the trace ({unlocated} of {fit.device_s.size} stage edges sit where the "
        f"device's clock puts them, and the located ones do not pin that clock), so they may be off by up to "
        f"{rel[w]:.1%} of its energy, over the {max_rel:.0%} a figure may carry ({bad.size} of {len(names)} "
        "windows are refused)", PLACEMENT_FIX)
